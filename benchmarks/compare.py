"""Side-by-side speed benchmark: keras_bert vs keras-hub's BERT (TensorFlow backend, CPU).

    python -m benchmarks.compare                 # full run (about 25-35 min on 2 cores)
    python -m benchmarks.compare --quick         # bert_mini seq 128 only, short runs
    python -m benchmarks.compare --configs mini-128 base-128 --json out.json

Every model configuration runs in its own subprocess. Inside it, both packages
are built with identical shapes (`hidden_act="gelu_new"`, keras-hub's GELU),
in float32 and under `mixed_bfloat16` (the policy is set before each model is
built, so four models coexist), and fed the same random batch. Runs alternate
between the variants (ours-f32, hub-f32, ours-bf16, hub-bf16, then again) so
that load from other processes hits all of them alike; the reported number is
the median over rounds, and ratios are taken between variants of one process.

Paths:
  step     one plain training step: tf.GradientTape + keras AdamW over MLM
           (20 masked positions per sequence) + NSP, in a tf.function with or
           without jit_compile; the same loss code for both packages.
  infer    one inference call (`model(x, training=False)`) of the encoder/backbone.
  fit      each package's own `fit`: `BertPretrainer` (MLM+NSP) vs keras-hub
           `BertMaskedLM` (MLM only; keras-hub has no NSP task).
  predict  each package's own `predict`: `BertClassifier` vs `BertTextClassifier`.
           `fit` and `predict` run one extra first batch and are timed by a callback
           from its end to the end of the last batch (TensorFlow's iterator teardown
           at the end of a call sometimes blocks for about 5 s, for both packages).

Each process also measures a large `tf.matmul` in float32 and bfloat16; the
"%peak" column is achieved GFLOP/s over that peak (of the variant's dtype).
FLOPs follow /work/shared/notes/performance-anchors.md: training
S*(6N + 12*L*S*d) + 6*(d^2 + d*V)*P per sequence (N = 12*L*d^2, P = 20 masked
positions), inference S*(2N + 4*L*S*d).

Where PyTorch + transformers (and onnxruntime + onnx) are installed, one more
process per configuration times Hugging Face's BERT and ONNX Runtime on the same
batch (`benchmarks/peers.py`; `--peers` picks them). Separate subprocesses measure
the peak RSS of one BERT-base training step at batch 16 (ours vs keras-hub) and
the real-text workload (`benchmarks/real_text.py`).
The last lines print the issue's target ratios with PASS/MISS.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

from benchmarks.harness import (CONFIGS, DEFAULT_CONFIGS, DTYPES, INT8, LABELS, PACKAGES, Variant, best_row,
                                machine_description, make_runner, matmul_peak, missing_modules, print_row,
                                print_table, random_batch, result_row, time_alternating)

# --------------------------------------------------------------------------- worker


def run_worker(args):
    import keras
    import tensorflow as tf

    import keras_bert

    preset, seq, batch = CONFIGS[args.worker]
    config = keras_bert.BertConfig.from_preset(preset, hidden_act="gelu_new")
    int8 = INT8 in args.dtypes
    peaks_before = matmul_peak(int8=int8)
    print(f"[{args.worker}] matmul peak GFLOP/s: {peaks_before}", flush=True)
    x, y = random_batch(config, seq, batch)
    variants = [Variant(p, d, config) for d in args.dtypes for p in PACKAGES if d != INT8 or p == "ours"]
    if "bfloat16" in args.dtypes and set(args.paths) & {"infer", "predict"}:
        variants.append(Variant("ours", "bfloat16", config, stored_bfloat16=True))
    results = []
    for mode in args.paths:
        for xla in args.xla:
            steps = (args.steps or 3) if mode in ("step", "fit") else args.infer_steps
            runners, compile_s = {}, {}
            for v in variants:
                if v.inference_only and mode in ("step", "fit"):
                    continue  # Keras' int8 layers train no weights; stored bfloat16 is how exports run
                try:
                    warmup, run = make_runner(v, mode, xla, x, y, steps)
                    start = time.perf_counter()
                    warmup()
                    compile_s[v.name] = time.perf_counter() - start
                    runners[v.name] = run
                except Exception as e:  # noqa: BLE001 - a failing variant is reported, not fatal
                    print(f"[{args.worker}] {mode} xla={xla} {v.name}: FAILED {type(e).__name__}: {e}",
                          flush=True)
            times = time_alternating(runners, args.rounds)
            for v in variants:
                if v.name in times:
                    row = result_row(config, args.worker, preset, seq, batch, mode, xla, v.package, v.dtype,
                                     v.name, times[v.name], steps, peaks_before[v.dtype], compile_s[v.name])
                    results.append(row)
                    print_row(row)
    peaks_after = matmul_peak(int8=int8)
    out = dict(config=args.worker, preset=preset, seq=seq, batch=batch, peaks_before=peaks_before,
               peaks_after=peaks_after, results=results, keras=keras.__version__, tensorflow=tf.__version__)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


# --------------------------------------------------------------------------- memory

def run_memory(args):
    """One process: build BERT-base (one package), run training steps, print the RSS high-water mark."""
    import resource

    import keras_bert

    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = keras_bert.BertConfig.from_preset("bert_base", hidden_act="gelu_new")
    x, y = random_batch(config, 128, 16)
    variant = Variant(args.memory, args.memory_dtype, config)
    warmup, run = make_runner(variant, "step", False, x, y, 2)
    warmup()
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"package": args.memory, "dtype": args.memory_dtype, "rss_peak_mib": peak,
                      "rss_after_import_mib": start_rss}))


# --------------------------------------------------------------------------- optional peers

def optional_peers():
    """label -> 'measured' or why not, for each peer of `benchmarks.peers`."""
    notes = {}
    for peer, label in LABELS.items():
        missing = missing_modules(peer)
        notes[label] = f"skipped: {', '.join(missing)} not installed" if missing else "measured (benchmarks.peers)"
    return notes


# --------------------------------------------------------------------------- driver

def _sub(argv, timeout, module="benchmarks.compare"):
    """Runs `python -m MODULE ARGV`, echoing its result lines as they come."""
    cmd = [sys.executable, "-m", module] + argv
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    deadline, output = time.time() + timeout, []
    for line in proc.stdout:
        output.append(line)
        if line.startswith(("[", "{")):
            print("   ", line.rstrip(), flush=True)
        if time.time() > deadline:
            proc.kill()
            break
    returncode = proc.wait()
    text = "".join(output)
    if returncode:
        print(text[-3000:], flush=True)
    return returncode, text


def targets(rows, memory, real):
    """The issue's targets as (name, value, threshold, pass)."""
    out = []

    def ratio_line(name, num, den, threshold):
        if num is None or den is None:
            out.append((name, None, threshold, None))
            return
        value = num["seq_per_s"] / den["seq_per_s"]
        out.append((name + f"  [{num['variant']} xla={num['xla']} vs {den['variant']} xla={den['xla']}]",
                    value, threshold, value >= threshold))

    for mode, label, bf16_abs in (("step", "training", 6.5), ("infer", "inference", 25.0)):
        ours_bf16 = best_row(rows, config="base-128", mode=mode, package="ours", dtype="bfloat16")
        ours_f32 = best_row(rows, config="base-128", mode=mode, package="ours", dtype="float32")
        hub_f32 = best_row(rows, config="base-128", mode=mode, package="hub", dtype="float32")
        if ours_bf16:
            out.append((f"BERT-base {label} bf16 seq/s (absolute)", ours_bf16["seq_per_s"], bf16_abs,
                        ours_bf16["seq_per_s"] >= bf16_abs))
        ratio_line(f"BERT-base {label} bf16 ours / hub f32", ours_bf16, hub_f32,
                   1.6 if mode == "step" else 1.8)
        ratio_line(f"BERT-base {label} f32 ours / hub f32", ours_f32, hub_f32, 1.1)
        if mode == "infer":
            ort = best_row(rows, config="base-128", mode=mode, package="ort", dtype="float32")
            ratio_line("BERT-base inference f32 ours / ONNX Runtime (ahead)", ours_f32, ort, 1.0)
    # Low precision (bfloat16 / int8) against keras-hub, and each precision's share of its matmul peak.
    hub_f32 = {m: best_row(rows, config="base-128", mode=m, package="hub", dtype="float32") for m in ("step", "infer")}
    hub_bf16 = best_row(rows, config="base-128", mode="step", package="hub", dtype="bfloat16")
    ours_bf16_step = best_row(rows, config="base-128", mode="step", package="ours", dtype="bfloat16")
    ratio_line("BERT-base training bf16 ours / hub f32 (low precision)", ours_bf16_step, hub_f32["step"], 2.5)
    ratio_line("BERT-base training bf16 ours / hub mixed_bfloat16", ours_bf16_step, hub_bf16, 1.5)
    for dtype, threshold in (("bfloat16", 4.0), (INT8, 4.5)):
        ours = best_row(rows, config="base-128", mode="infer", package="ours", dtype=dtype)
        ratio_line(f"BERT-base inference {dtype} ours / hub f32", ours, hub_f32["infer"], threshold)
    for dtype in (*DTYPES, INT8):
        ours = best_row(rows, config="base-128", mode="infer", package="ours", dtype=dtype)
        if ours and "peak_share" in ours:
            out.append((f"BERT-base inference {dtype} share of its matmul peak  [{ours['variant']} xla={ours['xla']}]",
                        ours["peak_share"], 0.6, ours["peak_share"] >= 0.6))
    for config in ("mini-128", "mini-512"):
        for mode in ("step", "infer", "fit", "predict"):
            ours = best_row(rows, config=config, mode=mode, package="ours")
            hub = best_row(rows, config=config, mode=mode, package="hub")
            if ours and hub:
                ratio_line(f"{config} {mode} ours best / hub best (any dtype, XLA on/off)", ours, hub, 1.5)
            for dtype in DTYPES:
                ours = best_row(rows, config=config, mode=mode, package="ours", dtype=dtype)
                hub = best_row(rows, config=config, mode=mode, package="hub", dtype=dtype)
                if ours and hub:
                    ratio_line(f"  (same dtype) {config} {mode} {dtype} ours / hub best-of-XLA", ours, hub, 1.5)
    for key, label in (("sst2", "Real text: SST-2 epoch non-padding tok/s"),
                       ("pretraining", "Real text: pretraining non-padding tok/s")):
        if real and key in real and real[key].get("ratio"):
            out.append((f"{label} ours / hub", real[key]["ratio"], 2.5, real[key]["ratio"] >= 2.5))
    for dtype in DTYPES:
        if memory.get(("ours", dtype)) and memory.get(("hub", dtype)):
            value = memory[("ours", dtype)] / memory[("hub", dtype)]
            out.append((f"Peak RSS BERT-base train step b16 {dtype} ours / hub (lower is better)",
                        value, 1.0, value < 1.0))
    return out


def print_peer_ratios(rows):
    """Ours (best of XLA on/off) over each PyTorch/ONNX Runtime row of the same config, path and dtype."""
    lines = []
    for r in rows:
        if r["package"] in ("hf", "ort"):
            ours = best_row(rows, config=r["config"], mode=r["mode"], package="ours", dtype=r["dtype"])
            if ours:
                lines.append(f"  {r['config']:9s} {r['mode']:7s} {r['dtype']:8s} ours / {r['variant']}"
                             f"{' (compiled)' if r['package'] == 'hf' and r['xla'] else ''}: "
                             f"{ours['seq_per_s'] / r['seq_per_s']:.2f}x")
    if lines:
        print("\nAgainst the other peers (ours best of XLA on/off / peer, sequences/s):")
        print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="mini-128 only, few steps (development)")
    parser.add_argument("--configs", nargs="*", default=None, choices=sorted(CONFIGS),
                        help="model configurations (none: only the memory and real-text parts)")
    parser.add_argument("--paths", nargs="+", default=["step", "infer", "fit", "predict"],
                        choices=["step", "infer", "fit", "predict"])
    parser.add_argument("--xla", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--dtypes", nargs="+", default=[*DTYPES, INT8], choices=[*DTYPES, INT8],
                        help="int8: ours only, inference paths (Keras quantize('int8'))")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per measurement")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--sst2-examples", type=int, default=2000, help="real text: SST-2 sentences")
    parser.add_argument("--pretrain-steps", type=int, default=30, help="real text: pretraining steps")
    parser.add_argument("--no-real-text", action="store_true")
    parser.add_argument("--peers", nargs="*", default=["hf", "ort"], choices=["hf", "ort"],
                        help="also time these peers where installed (benchmarks/peers.py; none: skip)")
    parser.add_argument("--peer-compile", nargs="+", default=["off"], choices=["off", "on"],
                        help="torch.compile for the Hugging Face peer (its 'xla' axis)")
    parser.add_argument("--json", default=None, help="write all results here")
    parser.add_argument("--merge", nargs="+", default=[],
                        help="also report results of earlier runs: worker JSONs or --json outputs of this harness")
    # internal
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per timed call of the step/fit paths (default 3; 2 for base-128); "
                             "more amortizes `fit`'s per-call overhead")
    parser.add_argument("--infer-steps", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        args.xla = [x is True or x == "on" for x in args.xla]
        return run_worker(args)
    if args.memory:
        return run_memory(args)

    import tempfile

    configs = args.configs if args.configs is not None else (["mini-128"] if args.quick else list(DEFAULT_CONFIGS))
    rounds = args.rounds or (2 if args.quick else 3)
    started = time.time()

    rows, workers, peer_workers = [], [], []
    tmp = tempfile.mkdtemp(prefix="bert_compare_")
    for name in configs:
        out = os.path.join(tmp, f"{name}.json")
        short = args.quick or name.startswith("base")
        steps = ["--steps", str(args.steps or (2 if short else 3))] + (["--infer-steps", "3"] if short else [])
        rc, _ = _sub(["--worker", name, "--out", out, "--rounds", str(rounds), "--paths", *args.paths,
                      "--xla", *args.xla, "--dtypes", *args.dtypes, *steps], timeout=3600)
        if rc == 0:
            with open(out) as f:
                data = json.load(f)
            workers.append({k: v for k, v in data.items() if k != "results"})
            rows.extend(data["results"])
        peer_paths = [p for p in args.paths if p in ("step", "infer")]
        wanted = [p for p in args.peers if not missing_modules(p)]
        if wanted and peer_paths:
            # PyTorch and ONNX Runtime run in their own process, right after ours and keras-hub's.
            out = os.path.join(tmp, f"{name}_peers.json")
            rc, _ = _sub(["--config", name, "--out", out, "--rounds", str(rounds), "--packages", *wanted,
                          "--paths", *peer_paths, "--dtypes", *args.dtypes, "--compile", *args.peer_compile,
                          *steps], timeout=3600, module="benchmarks.peers")
            if rc == 0:
                with open(out) as f:
                    data = json.load(f)
                peer_workers.append({k: v for k, v in data.items() if k != "results"})
                rows.extend(data["results"])
    memory = {}
    if not args.no_memory and not args.quick:
        for dtype in args.memory_dtypes:
            for package in PACKAGES:
                rc, text = _sub(["--memory", package, "--memory-dtype", dtype], timeout=1200)
                for line in text.splitlines():
                    if line.startswith("{"):
                        memory[(package, dtype)] = json.loads(line)["rss_peak_mib"]
    real = None
    if not args.no_real_text:
        out = os.path.join(tmp, "real_text.json")
        cmd = [sys.executable, "-m", "benchmarks.real_text", "--json", out] + (["--quick"] if args.quick else [
            "--sst2-examples", str(args.sst2_examples), "--pretrain-steps", str(args.pretrain_steps)])
        print("$", " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as f:
                real = json.load(f)

    for path in args.merge:
        with open(path) as f:
            data = json.load(f)
        if "workers" in data:  # a --json output of this harness
            workers.extend(data["workers"])
            peer_workers.extend(data.get("peer_workers", []))
            rows.extend(data["results"])
            for key, value in (data.get("memory_rss_mib") or {}).items():
                memory.setdefault(tuple(key.split("-", 1)), value)
            real = real or data.get("real_text")
        else:  # one worker's output (ours and keras-hub's, or the peers')
            (peer_workers if "torch" in data else workers).append({k: v for k, v in data.items() if k != "results"})
            rows.extend(data["results"])
    # Background load moves the matmul peak: the share uses the best of the two peak measurements.
    best_peaks = {w["config"]: {d: max(w["peaks_before"][d], w["peaks_after"][d]) for d in w["peaks_before"]}
                  for w in workers}
    for row in rows:
        if row["config"] in best_peaks:
            row["peak_share"] = row["gflops"] / best_peaks[row["config"]][row["dtype"]]
    machine = machine_description()
    print()
    print(f"Machine: {machine}; "
          f"matmul peaks per worker (GFLOP/s, before/after): "
          + "; ".join(f"{w['config']}: f32 {w['peaks_before']['float32']:.0f}/{w['peaks_after']['float32']:.0f}, "
                      f"bf16 {w['peaks_before']['bfloat16']:.0f}/{w['peaks_after']['bfloat16']:.0f}"
                      + (f", int8 (XLA, GOP/s) {w['peaks_before'][INT8]:.0f}/{w['peaks_after'][INT8]:.0f}"
                         if INT8 in w["peaks_before"] else "")
                      for w in workers))
    print_table(rows)
    if memory:
        print("\nPeak RSS of a BERT-base training step, batch 16 (MiB): "
              + ", ".join(f"{p} {d}: {v:.0f}" for (p, d), v in memory.items()))
    if real:
        for key in ("sst2", "pretraining"):
            if key in real:
                r = real[key]
                print(f"\nReal text {key}: {r.get('description', '')}")
                for pkg in ("ours", "hub"):
                    if pkg in r:
                        print(f"  {pkg:4s}: {r[pkg]['tokens_per_s']:.0f} non-padding tok/s "
                              f"({r[pkg]['seconds']:.1f}s, {r[pkg]['real_tokens']} real of "
                              f"{r[pkg]['total_tokens']} tokens)")
    peer_notes = optional_peers()
    for label, note in peer_notes.items():
        print(f"{label}: {note}")
    for w in peer_workers:
        for name, note in w.get("skipped", {}).items():
            print(f"  {w['config']} {name}: {note}")
    print_peer_ratios(rows)
    result = targets(rows, memory, real)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(machine=dict(processor=platform.processor(), cpus=os.cpu_count(),
                                        platform=platform.platform(), description=machine),
                           command=" ".join(["python -m benchmarks.compare"] + (argv or sys.argv[1:])),
                           seconds=time.time() - started, workers=workers, peer_workers=peer_workers,
                           results=rows,
                           memory_rss_mib={f"{p}-{d}": v for (p, d), v in memory.items()},
                           real_text=real, peers=peer_notes,
                           targets=[dict(name=n, value=v, threshold=t, passed=ok) for n, v, t, ok in result]),
                      f, indent=1)
        print(f"wrote {args.json}")

    print("\nTargets (ours / keras-hub, measured side by side in one process):")
    for name, value, threshold, ok in result:
        if value is None:
            print(f"  n/a   {name}")
        else:
            print(f"  {'PASS' if ok else 'MISS'}  {name}: {value:.2f} (target {'<' if 'RSS' in name else '>='} "
                  f"{threshold})")


if __name__ == "__main__":
    main()
