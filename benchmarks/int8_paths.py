"""Where an int8 export's time goes: the int8 kernels of `keras_bert.export.int8` side by side, one process.

Not a test. From the repository root, on a fine-tuned SST-2 model directory:

    nice -n 10 python -m benchmarks.int8_paths --model /work/artifacts/sst2/finetune [--examples 256]

Builds one `ServingModule` (the graph `serving.export` saves, without the save) per variant:
float32, bfloat16, and int8 through each kernel (`xla`: the whole model XLA-compiled; `xla_dense`:
only the quantized Dense clusters, on bucketed inputs; `xla_rows`: the same clusters padding their
own rows; `onednn`: `QuantizedMatMulWithBias`, no XLA), the rest of the
model in float32 or bfloat16. Each runs `serving_default` over the SST-2 dev sentences in batches
(one warm pass first, which compiles every bucket an XLA kernel meets), the variants alternated
over `--rounds`. Prints sentences/s and the ratio to float32, agreement with float32, and with
`--profile` the time per TensorFlow op type (TF profiler host trace) of each variant.
"""

import argparse
import collections
import glob
import json
import os
import tempfile
import time

import numpy as np

from benchmarks.harness import machine_description
from benchmarks.sst2_precision import DEV

# (name, int8 kernel or None, Keras dtype policy of the model)
VARIANTS = (
    ("float32", None, "float32"),
    ("bfloat16", None, "bfloat16"),
    ("int8 xla (f32 rest)", "xla", "float32"),
    ("int8 xla_dense (f32 rest)", "xla_dense", "float32"),
    ("int8 xla_dense (bf16 rest)", "xla_dense", "bfloat16"),
    ("int8 xla_rows (f32 rest)", "xla_rows", "float32"),
    ("int8 xla_rows (bf16 rest)", "xla_rows", "bfloat16"),
    ("int8 onednn (f32 rest)", "onednn", "float32"),
    ("int8 onednn (bf16 rest)", "onednn", "bfloat16"),
)


def build(model_dir, kernel, policy):
    """A classification `ServingModule` of `model_dir` for one variant."""
    import keras_bert
    from keras_bert.export import ServingModule, int8
    from keras_bert.export.precision import quantize_int8

    model = keras_bert.load(model_dir, dtype_policy=None if policy == "float32" else policy)
    precision = "float32" if policy == "float32" else "bfloat16"
    if kernel is not None:
        int8.use_kernel(quantize_int8(model), kernel)
        precision = "int8"
    settings = keras_bert.load_tokenizer_settings(model_dir, require_vocab=True)
    return ServingModule(model, "classification", settings["vocab_file"], lowercase=settings.get("lowercase", True),
                         precision=precision)


def run(module, texts, batch_size):
    """Probabilities over `texts` and the seconds `serving_default` took."""
    import tensorflow as tf

    rows, seconds = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start:start + batch_size])
        began = time.perf_counter()
        rows.append(module.serving_default(batch)["probabilities"].numpy())
        seconds += time.perf_counter() - began
    return np.concatenate(rows), seconds


def op_times(module, texts, batch_size):
    """`{op type: milliseconds}` of one pass, from the TF profiler's host trace."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run(module, texts, batch_size)
        tf.profiler.experimental.stop()
        totals = collections.Counter()
        for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
            space = xplane_pb2.XSpace.FromString(open(path, "rb").read())
            for plane in space.planes:
                if not plane.name.startswith("/host"):
                    continue
                for line in plane.lines:
                    for event in line.events:
                        name = plane.event_metadata[event.metadata_id].name
                        if ":" in name and not name.startswith("__"):
                            totals[name.rsplit(":", 1)[-1]] += event.duration_ps / 1e9
                        elif "xla" in name.lower() or "cluster" in name.lower():
                            totals["[" + name.split(":")[0][:40] + "]"] += event.duration_ps / 1e9
    return dict(totals.most_common(18))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/artifacts/sst2/finetune")
    parser.add_argument("--examples", type=int, default=872)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=None, help="variant names (default: all)")
    parser.add_argument("--profile", action="store_true", help="per-op-type times of each variant")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from keras_bert.data import read_text_examples

    texts = list(read_text_examples(DEV).texts_a)[:args.examples]
    variants = [v for v in VARIANTS if args.variants is None or v[0] in args.variants]
    modules, warm = {}, {}
    for name, kernel, policy in variants:
        began = time.perf_counter()
        modules[name] = build(args.model, kernel, policy)
        run(modules[name], texts, args.batch_size)  # traces, and compiles every bucket met
        warm[name] = time.perf_counter() - began
        print(f"built + warm pass {name}: {warm[name]:.1f}s", flush=True)
    probabilities, seconds = {}, collections.defaultdict(list)
    for round_index in range(args.rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for name, _, _ in order:
            probabilities[name], spent = run(modules[name], texts, args.batch_size)
            seconds[name].append(spent)
    reference = probabilities.get("float32")
    result = {"machine": machine_description(), "examples": len(texts), "batch_size": args.batch_size,
              "rounds": args.rounds, "variants": {}}
    for name, _, _ in variants:
        speed = len(texts) / float(np.median(seconds[name]))
        row = {"sentences_per_second": speed, "build_and_warm_seconds": warm[name]}
        if reference is not None:
            row["vs_float32"] = speed / (len(texts) / float(np.median(seconds["float32"])))
            row["agreement"] = float(np.mean(reference.argmax(-1) == probabilities[name].argmax(-1)))
            row["max_abs_probability_difference"] = float(np.abs(reference - probabilities[name]).max())
        if args.profile:
            row["op_milliseconds"] = op_times(modules[name], texts, args.batch_size)
        result["variants"][name] = row
        print(f"{name:28s} {speed:7.1f} sent/s  " + "  ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k in ("vs_float32", "agreement")), flush=True)
        if args.profile:
            print("    " + ", ".join(f"{k} {v:.0f}" for k, v in row["op_milliseconds"].items()), flush=True)
    print(f"machine: {result['machine']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
