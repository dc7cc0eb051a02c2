"""Served SST-2 classifier at float32 / bfloat16 / int8: speed through the SavedModel, agreement, accuracy.

Not a test. One command, from the repository root, on a fine-tuned SST-2 model directory (e.g. what
`python -m benchmarks.sst2_quality` or `training/configs/finetune_sst2.yaml` leaves):

    python -m benchmarks.sst2_precision --model /work/artifacts/sst2/finetune [--json OUT.json]

1. Exports the model once per precision with `serving.export`'s code (`export_model_dir`, task
   `classification`, `--precision float32|bfloat16|int8`, warmup records written).
2. Loads each SavedModel with `tf.saved_model.load`, replays its warmup records (as TF Serving does at
   load: for int8 that compiles every length/batch bucket), then runs `serving_default` on the raw
   sentences of `../shared/data/sst2/dev.tsv`, in batches, the precisions alternated over `--rounds`.
3. Reports sentences/s per precision and the ratio to float32, label agreement with float32 (flips and
   the float32 margin of each), dev accuracy, and the issue's targets as PASS/MISS lines, under a
   machine line (AMX / avx512_bf16 presence). Ratios are what counts on a shared machine.
4. With `--ort-python PY` (an environment holding torch, transformers, onnx, onnxruntime; see
   `benchmarks/ort_peer.py`): ONNX Runtime dynamic int8 of the same weights on the same batches' ids
   (tokenized by the export's own tokenizer, outside the timing), one pass per round in a separate
   process between the rounds of the SavedModels, and the target "bfloat16 and int8 ahead of it".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.harness import machine_description

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2", "dev.tsv")
# (precision, speed-up over the float32 export at least, agreement with float32 at least)
TARGETS = (("bfloat16", 1.8, 0.995), ("int8", 2.5, 0.99))
ACCURACY_POINTS = 0.5  # dev accuracy within this many points of float32
ORT = "onnxruntime int8"  # the peer's row name


def export_all(model_dir, work_dir, precisions, max_length=None):
    """Exports `model_dir` at each precision; returns `{precision: version directory}`."""
    from keras_bert.export import export_model_dir

    return {p: export_model_dir(model_dir, os.path.join(work_dir, f"sst2_{p}"), "classification", version=1,
                                server_configs=False, precision=p, max_length=max_length) for p in precisions}


def load_warm(path):
    """`serving_default` of a SavedModel after replaying its warmup records, and the seconds the replay took."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from keras_bert.export import WARMUP_FILE

    loaded = tf.saved_model.load(path)
    began = time.perf_counter()
    for record in tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE)):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        loaded.signatures[request.model_spec.signature_name or "serving_default"](
            **{k: tf.constant(v) for k, v in inputs.items()})
    return loaded, loaded.signatures["serving_default"], time.perf_counter() - began


def classify(signature, texts, batch_size):
    """Probabilities of `serving_default` over `texts`, and the seconds it took."""
    import tensorflow as tf

    rows, seconds = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start:start + batch_size])
        began = time.perf_counter()
        outputs = signature(text=batch)
        rows.append(outputs["probabilities"].numpy())
        seconds += time.perf_counter() - began
    return np.concatenate(rows), seconds


def run_ort(python, work_dir, rounds=1):
    """One `benchmarks.ort_peer` process (the first converts and quantizes); returns its result."""
    from benchmarks import ort_peer

    env = dict(os.environ, PYTHONPATH=REPO_ROOT, CUDA_VISIBLE_DEVICES="")
    subprocess.run([python, "-m", "benchmarks.ort_peer", "--work", work_dir, "--rounds", str(rounds)],
                   cwd=REPO_ROOT, env=env, check=True, stdout=sys.stderr)
    with open(os.path.join(work_dir, ort_peer.RESULT_FILE), encoding="utf-8") as f:
        return json.load(f)


def main(argv=None):
    from keras_bert.export import PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/artifacts/sst2/finetune", help="a fine-tuned SST-2 model directory")
    parser.add_argument("--dev-file", default=DEV)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--near-tie", type=float, default=0.1, help="float32 margin below which a flip is a near-tie")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None,
                        help="export truncation length (default: the model's; fewer int8 length buckets to compile)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per precision, alternated")
    parser.add_argument("--ort-python", default=None,
                        help="python of an environment with onnxruntime/torch/transformers: add the ONNX Runtime "
                             "dynamic int8 peer (benchmarks/ort_peer.py)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.model, "keras_bert.json")):
        raise SystemExit(f"error: {args.model} is not a keras_bert model directory (pass --model)")
    if not os.path.exists(args.dev_file):
        raise SystemExit(f"error: {args.dev_file} not found (../shared/data/sst2)")
    precisions = ["float32"] + [p for p in args.precisions if p != "float32"]

    from keras_bert.data import read_text_examples

    examples = read_text_examples(args.dev_file)
    texts, labels = list(examples.texts_a), np.asarray(examples.labels)
    with tempfile.TemporaryDirectory() as work_dir:
        paths = export_all(args.model, work_dir, precisions, args.max_length)
        loaded = {p: load_warm(path) for p, path in paths.items()}
        probabilities, seconds = {}, {p: [] for p in precisions}
        ort_work = os.path.join(work_dir, "ort")
        if args.ort_python:
            from benchmarks import ort_peer

            ort_peer.prepare(args.model, texts, ort_work, args.batch_size)
            ort_check = run_ort(args.ort_python, ort_work)  # converts, checks float32, quantizes
            seconds[ORT] = []
        for round_index in range(args.rounds):
            order = precisions if round_index % 2 == 0 else list(reversed(precisions))
            for precision in order:
                probabilities[precision], spent = classify(loaded[precision][1], texts, args.batch_size)
                seconds[precision].append(spent)
            if args.ort_python:
                ort_run = run_ort(args.ort_python, ort_work)
                seconds[ORT] += ort_run["seconds"]
                probabilities[ORT] = np.asarray(ort_run["probabilities"], "float32")

    f32 = probabilities["float32"]
    margins = np.abs(f32[:, 1] - f32[:, 0])
    speed = {p: len(texts) / float(np.median(s)) for p, s in seconds.items()}
    result = {"examples": len(texts), "batch_size": args.batch_size, "rounds": args.rounds,
              "sentences_per_second": speed, "warmup_seconds": {p: loaded[p][2] for p in precisions},
              "accuracy": {p: float(np.mean(probabilities[p].argmax(-1) == labels)) for p in probabilities},
              "machine": machine_description(), "command": "python -m benchmarks.sst2_precision --model " + args.model}
    if args.ort_python:
        result["onnxruntime"] = {k: v for k, v in ort_check.items() if k not in ("probabilities", "seconds")}
    for precision in [p for p in probabilities if p != "float32"]:
        flips = np.flatnonzero(f32.argmax(-1) != probabilities[precision].argmax(-1))
        result[precision] = {
            "speedup_vs_float32": speed[precision] / speed["float32"],
            "agreement": 1.0 - len(flips) / len(texts),
            "disagreements": int(len(flips)),
            "disagreements_not_near_ties": int(np.sum(margins[flips] >= args.near_tie)),
            "disagreement_float32_margins": [round(float(m), 4) for m in margins[flips]],
            "max_abs_probability_difference": float(np.abs(f32 - probabilities[precision]).max()),
        }
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    print(f"machine: {result['machine']}")
    for precision in probabilities:
        print(f"  {precision:9s} {speed[precision]:8.1f} sentences/s  dev accuracy {result['accuracy'][precision]:.2%}")
    for precision, min_speedup, min_agreement in TARGETS:
        if precision not in result:
            continue
        row = result[precision]
        accuracy_drop = 100 * (result["accuracy"]["float32"] - result["accuracy"][precision])
        checks = [(f"served SST-2 {precision} / float32 export", row["speedup_vs_float32"], min_speedup, "x"),
                  (f"served SST-2 {precision} agreement with float32", row["agreement"], min_agreement, ""),
                  (f"served SST-2 {precision} dev accuracy drop (points, at most)", -accuracy_drop,
                   -ACCURACY_POINTS, "")]
        for name, value, target, unit in checks:
            shown = f"{-value:.2f} (target <= {-target})" if target < 0 else f"{value:.4g}{unit} (target >= {target})"
            print(f"  {'PASS' if value >= target else 'MISS'}  {name}: {shown}")
        print(f"        {precision}: {row['disagreements']} flips, {row['disagreements_not_near_ties']} with a "
              f"float32 margin >= {args.near_tie}")
        if ORT in speed:
            print(f"  {'PASS' if speed[precision] > speed[ORT] else 'MISS'}  served SST-2 {precision} ahead of "
                  f"ONNX Runtime int8: {speed[precision] / speed[ORT]:.3g}x (target > 1)")
    if ORT in speed:
        print(f"        {ORT}: float32 logits vs keras_bert max abs difference "
              f"{result['onnxruntime']['float32_max_abs_logit_difference']:.2e}; agreement with float32 "
              f"{result[ORT]['agreement']:.4f}; timed on pre-tokenized ids")
    return result


if __name__ == "__main__":
    main()
