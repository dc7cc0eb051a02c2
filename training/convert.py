"""Converts a TF1, Hugging Face or keras-hub BERT checkpoint into a keras_bert model directory.

Usage:
    python -m training.convert --from tf1 uncased_L-2_H-128_A-2 --out models/bert_tiny
    python -m training.convert --from hf path/to/bert-base-portuguese-cased --out models/bertimbau
    python -m training.convert --from keras_hub path/to/preset --out models/kh --vocab vocab.txt

The output loads with `keras_bert.load(OUT)`.
"""

import argparse
import sys


def parse_args(argv=None):
    """Parses the command line.

    Args:
        argv: list of str or None. Arguments (default `sys.argv[1:]`).
    """
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source_format", required=True, choices=("tf1", "hf", "keras_hub"),
                        help="format of SRC")
    parser.add_argument("src", metavar="SRC", help="source folder (for tf1 also a checkpoint prefix)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--vocab", default=None, help="vocab.txt, when the source has none")
    parser.add_argument("--no-heads", dest="heads", action="store_false", default="auto",
                        help="load the encoder only, ignoring pretraining heads in the source")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lowercase", dest="lowercase", action="store_true", default=None,
                        help="uncased tokenizer (default: from the source)")
    casing.add_argument("--cased", dest="lowercase", action="store_false", help="cased tokenizer")
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the conversion and prints a summary.

    Args:
        argv: list of str or None. Command-line arguments.
    """
    args = parse_args(argv)
    from keras_bert.checkpoints import CheckpointMismatchError, convert

    try:
        model = convert(args.source_format, args.src, args.out, vocab_file=args.vocab, lowercase=args.lowercase,
                        heads=args.heads)
    except (CheckpointMismatchError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    encoder = getattr(model, "encoder", model)
    config = encoder.config
    print(f"Converted {args.source_format} {args.src} -> {args.out}: {type(model).__name__}, "
          f"{config.num_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size}, "
          f"{'uncased' if config.lowercase else 'cased'}, {model.count_params():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
