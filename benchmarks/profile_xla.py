"""Where an XLA-compiled training step or inference call spends its time, per layer and per kind of op.

Runs one path of `benchmarks.compare` (`step`, `infer`, or each package's own `fit`/`predict`; same model,
same random batch, XLA on) under TensorFlow's profiler with XLA's per-op trace events, and joins each
event with the TensorFlow op it was compiled from (the HLO dump's `op_name` metadata). It prints the wall
time per call, the share spent in matmuls (and their GFLOP/s), the time of each layer (all blocks summed,
forward and backward apart), and the slowest single ops: what is left to win once the matmuls run near
the machine's peak.

    python -m benchmarks.profile_xla --config mini-128 --path step
    python -m benchmarks.profile_xla --config base-128 --path infer --package hub --top 15

Thread-time sums can exceed the wall time: XLA runs independent ops on both cores at once.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

# benchmarks.harness imports TensorFlow only inside its functions, so XLA_FLAGS can still be set below.
from benchmarks.harness import CONFIGS, Variant, flops_per_sequence, make_runner, random_batch

# `%name = f32[...]{...} opcode(...), ... metadata={op_type="MatMul" op_name="a/b/MatMul"`
_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%(\S+) = .*? ([a-z][a-z0-9-]*)\(.*?metadata=\{op_type="([^"]*)" '
                          r'op_name="([^"]*)"')


def hlo_ops(dump_dir):
    """`{module name: {instruction: (opcode, tf op_type, tf op_name)}}` of every optimized HLO module."""
    modules = {}
    for path in glob.glob(os.path.join(dump_dir, "*cpu_after_optimizations.txt")):
        ops, module = {}, None
        with open(path) as f:
            for line in f:
                if line.startswith("HloModule "):
                    module = line.split()[1].rstrip(",")
                match = _INSTRUCTION.match(line)
                if match:
                    name, opcode, op_type, op_name = match.groups()
                    ops[name] = (opcode, op_type, op_name)
        modules[module] = ops
    return modules


def op_events(profile_dir):
    """`{(module, instruction): total picoseconds}` of XLA's per-op trace events."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(profile_dir, "plugins", "profile", "*", "*.xplane.pb"))[-1], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        stat_names = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                module = next((plane.stat_metadata[s.ref_value].name for s in list(event.stats) + list(meta.stats)
                               if stat_names.get(s.metadata_id) == "hlo_module" and s.ref_value), None)
                if module:
                    totals[(module, meta.name)] += event.duration_ps
    return totals


MODEL_SCOPES = ("bert_pretrainer", "bert_encoder", "bert_classifier", "functional", "bert_backbone", "bert_masked_lm",
                "bert_text_classifier")


def layer_of(op_name):
    """The layer of a TensorFlow op, without model scopes and `_N` suffixes.

    `bert_pretrainer_1/bert_encoder_1/transformer_block_2_1/intermediate_1/MatMul` is in
    `transformer_block/intermediate`.

    A gradient op, `gradient_tape/<forward op>/<gradient op>`, goes to its forward op's layer, marked.
    """
    backward = op_name.startswith("gradient_tape/")
    parts = op_name.split("/")
    path = [re.sub(r"(_\d+)+$", "", p) for p in (parts[1:-1] if backward else parts)]  # no `_N` suffixes
    scopes = [scope for scope in path[:-1] if scope not in MODEL_SCOPES]
    layer = "/".join(scopes[:2]) or path[-1]
    return layer + (" (backward)" if backward else "")


def profile(config_name, path, package, calls):
    """Runs the path under the profiler; returns (wall seconds per call, flops per call, rows)."""
    dump_dir, profile_dir = tempfile.mkdtemp(prefix="xla_dump_"), tempfile.mkdtemp(prefix="xla_profile_")
    # XLA reads its flags when TensorFlow loads, so they are set before the first import of it.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_enable_xprof_traceme=true"
                               f" --xla_dump_to={dump_dir} --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$")
    import keras_bert
    import tensorflow as tf

    preset, seq, batch = CONFIGS[config_name]
    config = keras_bert.BertConfig.from_preset(preset, hidden_act="gelu_new")
    x, y = random_batch(config, seq, batch)
    warmup, run = make_runner(Variant(package, "float32", config), path, True, x, y, calls)
    warmup()
    run()
    start = time.perf_counter()
    seconds = run()  # `fit`/`predict` time their own batches after the first
    wall = (seconds if seconds is not None else time.perf_counter() - start) / calls
    tf.profiler.experimental.start(profile_dir)
    run()
    tf.profiler.experimental.stop()
    profiled_calls = calls + 1 if path in ("fit", "predict") else calls  # they run one extra first batch

    modules, events = hlo_ops(dump_dir), op_events(profile_dir)
    for directory in (dump_dir, profile_dir):
        shutil.rmtree(directory, ignore_errors=True)
    # The module that took longest is the step (or inference call); the others are set-up.
    by_module = collections.Counter()
    for (module, _), ps in events.items():
        by_module[module] += ps
    module = by_module.most_common(1)[0][0]
    rows = []
    for (m, name), ps in events.items():
        if m == module and name in modules.get(module, {}):
            opcode, op_type, op_name = modules[module][name]
            is_matmul = opcode == "dot" or op_type in ("MatMul", "BatchMatMulV2", "Einsum")
            rows.append(dict(name=name, seconds=ps / 1e12 / profiled_calls, matmul=is_matmul, op_type=op_type,
                             op_name=op_name, layer=layer_of(op_name)))
    return wall, batch * flops_per_sequence(config, seq, path), rows


def report(wall, flops, rows, top):
    total = sum(r["seconds"] for r in rows)
    if not total:
        raise SystemExit("no XLA per-op trace events matched the HLO dump (does this TensorFlow's XLA "
                         "support --xla_cpu_enable_xprof_traceme?)")
    matmul = sum(r["seconds"] for r in rows if r["matmul"])
    print(f"wall {1000 * wall:.1f} ms per call; XLA ops {1000 * total:.1f} thread-ms, of which matmuls "
          f"{1000 * matmul:.1f} ms ({100 * matmul / total:.0f}%, {flops / matmul / 1e9:.0f} GFLOP/s over their "
          f"thread time) and other ops {1000 * (total - matmul):.1f} ms")
    layers = collections.defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        layers[r["layer"]][0 if r["matmul"] else 1] += r["seconds"]
    print(f"\n{'layer (all blocks summed)':52s} {'matmul ms':>9s} {'other ms':>9s}")
    for layer, (mm, other) in sorted(layers.items(), key=lambda kv: -sum(kv[1]))[:top]:
        print(f"{layer[:52]:52s} {1000 * mm:9.1f} {1000 * other:9.1f}")
    print(f"\nslowest ops other than matmuls (ms per call):")
    for r in sorted((r for r in rows if not r["matmul"]), key=lambda r: -r["seconds"])[:top]:
        print(f"  {1000 * r['seconds']:7.1f}  {r['name'][:28]:28s} {r['op_type'][:18]:18s} {r['op_name'][:90]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mini-128", choices=sorted(CONFIGS))
    parser.add_argument("--path", default="step", choices=["step", "infer", "fit", "predict"])
    parser.add_argument("--package", default="ours", choices=["ours", "hub"])
    parser.add_argument("--calls", type=int, default=3, help="calls profiled (and timed before, unprofiled)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    if "tensorflow" in sys.modules:
        raise SystemExit("profile_xla must set XLA_FLAGS before TensorFlow is imported; run it as a module")
    wall, flops, rows = profile(args.config, args.path, args.package, args.calls)
    print(f"{args.package} {args.config} {args.path}, float32, XLA on, {args.calls} calls profiled")
    report(wall, flops, rows, args.top)


if __name__ == "__main__":
    main()
