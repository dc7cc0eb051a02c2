"""Builds a WordPiece vocab.txt from text corpora (streaming; `keras_bert.tokenization.learn_vocabulary`).

Usage (from the repository root):
    python -m training.vocab --corpus a.txt b.txt --vocab-size 30000 [--cased] --output vocab.txt
"""

import glob
import sys

from keras_bert.tokenization import learn_vocabulary, write_vocabulary


def _expand(patterns):
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise SystemExit(f"error: --corpus {pattern!r} matches no file")
        files.extend(matches)
    return files


def main(argv=None):
    """Runs the vocabulary job.

    Args:
        argv: list[str] or None, command-line arguments.

    Returns:
        int: exit status.
    """
    from keras_bert.trainer import JobArgumentParser, JobHelpFormatter

    parser = JobArgumentParser(description=__doc__, formatter_class=JobHelpFormatter)
    parser.add_argument("--corpus", nargs="+", required=True, help="text files or globs")
    parser.add_argument("--vocab-size", type=int, required=True, help="tokens in the vocabulary")
    parser.add_argument("--cased", action="store_true", help="keep case and accents")
    parser.add_argument("--output", default="vocab.txt", help="where to write vocab.txt")
    parser.add_argument("--unused-tokens", type=int, default=0, help="[unusedN] placeholders to reserve")
    args = parser.parse_args(argv)
    files = _expand(args.corpus)
    vocabulary = learn_vocabulary(files, args.vocab_size, cased=args.cased, unused_tokens=args.unused_tokens)
    write_vocabulary(vocabulary, args.output)
    print(f"wrote {len(vocabulary)} tokens to {args.output} from {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    from keras_bert.trainer import run

    sys.exit(run(main))
