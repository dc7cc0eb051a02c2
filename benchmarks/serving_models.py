"""Exports the two classifiers the serving benchmark measures: bert_tiny and bert_base shapes.

    python -m benchmarks.serving_models --out runs/serving_bench
    python -m benchmarks.serving_benchmark --model_dir runs/serving_bench/tiny_clf \
        --model_dir runs/serving_bench/base_clf

Weights are random (serving speed does not depend on them); the tokenizer is the real
bert-base-uncased vocab from ../shared/data, so requests tokenize as in production.
"""

import argparse
import os

import keras_bert
from keras_bert.export import export

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO_ROOT, "..", "shared", "data", "vocab", "bert-base-uncased", "vocab.txt")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "runs", "serving_bench"))
    parser.add_argument("--vocab", default=VOCAB)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args(argv)
    if not os.path.exists(args.vocab):
        raise SystemExit(f"vocab not found: {args.vocab} (pass --vocab)")
    for name, preset in (("tiny_clf", "bert_tiny"), ("base_clf", "bert_base")):
        encoder = keras_bert.BertEncoder(keras_bert.BertConfig.from_preset(preset))
        model = keras_bert.BertClassifier(encoder, num_classes=2, labels=["negative", "positive"])
        version_dir = export(model, os.path.join(args.out, name), "classification", args.vocab,
                             lowercase=True, max_length=args.max_length)
        print(f"{preset} classifier -> {version_dir}")


if __name__ == "__main__":
    main()
