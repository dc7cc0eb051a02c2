"""Exported bfloat16 vs float32 SST-2 classifiers: do they give the same labels on the dev set?

Not a test. One command, from the repository root, after `python -m benchmarks.sst2_quality` (which leaves
the fine-tuned MiniLM in /tmp/sst2_quality/finetune):

    python -m benchmarks.bf16_agreement [--model /tmp/sst2_quality/finetune] [--json OUT.json]

1. Exports the model twice with `serving.export`'s code path (`export_model_dir`, task `classification`):
   float32, and `--mixed-precision mixed_bfloat16` (bfloat16 matmuls, float32 LayerNorm/softmax/logits).
2. Loads both SavedModels with `tf.saved_model.load` (as TF Serving does) and runs `serving_default` on the
   raw sentences of `../shared/data/sst2/dev.tsv`.
3. Reports the label agreement, each model's dev accuracy, and for every disagreement the float32
   model's margin `|p(positive) - p(negative)|`: a disagreement with margin < `--near-tie` (0.1) is a
   near-tie. Also the serving throughput of both graphs on this CPU (sentences/s, same batches, alternated).
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

from benchmarks.harness import machine_description

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2", "dev.tsv")


def export_both(model_dir, work_dir):
    """Exports `model_dir` as float32 and mixed_bfloat16 SavedModels; returns their version directories."""
    from keras_bert.export import export_model_dir

    paths = {}
    for precision in ("float32", "mixed_bfloat16"):
        paths[precision] = export_model_dir(model_dir, os.path.join(work_dir, f"sst2_{precision}"), "classification",
                                            version=1, warmup=False, server_configs=False,
                                            mixed_precision=precision)
    return paths


def classify(signature, texts, batch_size):
    """Probabilities of `serving_default` over `texts`, and the seconds it took."""
    import tensorflow as tf

    rows, seconds = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start:start + batch_size])
        began = time.perf_counter()
        outputs = signature(text=batch)
        seconds += time.perf_counter() - began
        rows.append(outputs["probabilities"].numpy())
    return np.concatenate(rows), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/tmp/sst2_quality/finetune", help="a fine-tuned SST-2 model directory")
    parser.add_argument("--dev-file", default=DEV)
    parser.add_argument("--near-tie", type=float, default=0.1, help="float32 margin below which a flip is a near-tie")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per model, alternated")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.model, "keras_bert.json")):
        raise SystemExit(f"error: {args.model} is not a keras_bert model directory "
                         "(run python -m benchmarks.sst2_quality first, or pass --model)")
    if not os.path.exists(args.dev_file):
        raise SystemExit(f"error: {args.dev_file} not found (../shared/data/sst2)")

    import tensorflow as tf

    from keras_bert.data import read_text_examples

    examples = read_text_examples(args.dev_file)
    texts, labels = list(examples.texts_a), np.asarray(examples.labels)
    with tempfile.TemporaryDirectory() as work_dir:
        paths = export_both(args.model, work_dir)
        signatures = {p: tf.saved_model.load(path).signatures["serving_default"] for p, path in paths.items()}
        probabilities, seconds = {}, {p: [] for p in signatures}
        for round_index in range(args.rounds):
            order = list(signatures) if round_index % 2 == 0 else list(reversed(signatures))
            for precision in order:
                probabilities[precision], spent = classify(signatures[precision], texts, args.batch_size)
                seconds[precision].append(spent)

    f32, bf16 = probabilities["float32"], probabilities["mixed_bfloat16"]
    predicted_f32, predicted_bf16 = f32.argmax(-1), bf16.argmax(-1)
    flips = np.flatnonzero(predicted_f32 != predicted_bf16)
    margins = np.abs(f32[:, 1] - f32[:, 0])
    result = {
        "examples": len(texts),
        "agreement": float(np.mean(predicted_f32 == predicted_bf16)),
        "disagreements": int(len(flips)),
        "near_tie_threshold": args.near_tie,
        "disagreements_not_near_ties": int(np.sum(margins[flips] >= args.near_tie)),
        "disagreement_float32_margins": [round(float(m), 4) for m in margins[flips]],
        "max_abs_probability_difference": float(np.abs(f32 - bf16).max()),
        "accuracy_float32": float(np.mean(predicted_f32 == labels)),
        "accuracy_bfloat16": float(np.mean(predicted_bf16 == labels)),
        "sentences_per_second": {p: len(texts) / float(np.median(s)) for p, s in seconds.items()},
        "machine": machine_description(),
        "command": "python -m benchmarks.bf16_agreement --model " + args.model,
    }
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    print(f"bfloat16 vs float32 on SST-2 dev: agreement {result['agreement']:.2%} "
          f"({result['disagreements']} flips, {result['disagreements_not_near_ties']} not near-ties); "
          f"accuracy {result['accuracy_float32']:.2%} float32, {result['accuracy_bfloat16']:.2%} bfloat16")
    return result


if __name__ == "__main__":
    main()
