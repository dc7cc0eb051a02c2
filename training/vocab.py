"""Builds a WordPiece vocab.txt from text corpora (streaming).

Usage (from the repository root):
    python -m training.vocab --corpus a.txt b.txt --vocab-size 30000 [--cased] --output vocab.txt
"""

import argparse
import glob
import sys

from keras_bert.tokenization.vocabulary import RESERVED_TOKENS, validate_vocabulary


def _expand(patterns):
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise SystemExit(f"error: --corpus {pattern!r} matches no file")
        files.extend(matches)
    return files


def build_vocabulary(files, vocab_size, cased=False, unused_tokens=0):
    """Learns a WordPiece vocabulary with tensorflow-text's learner, streaming the corpus.

    Args:
        files: list[str], UTF-8 text files (read line by line with tf.data).
        vocab_size: int, maximum vocabulary size (reserved tokens included).
        cased: bool, keep case and accents (cased BERT); else lower-case and strip accents.
        unused_tokens: int, "[unusedN]" placeholders added after the reserved tokens.

    Returns:
        list[str]: tokens, [PAD] [UNK] [CLS] [SEP] [MASK] first.
    """
    import tensorflow as tf
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as learner

    lines = tf.data.TextLineDataset(files).filter(lambda line: tf.strings.length(line) > 0)
    reserved = list(RESERVED_TOKENS) + [f"[unused{i}]" for i in range(unused_tokens)]
    vocabulary = learner.bert_vocab_from_dataset(
        lines.batch(1024).prefetch(2),
        vocab_size=vocab_size,
        reserved_tokens=reserved,
        bert_tokenizer_params={"lower_case": not cased},
        learn_params={},
    )
    # Drop accidental duplicates while keeping order (the learner may re-emit a reserved token).
    seen, unique = set(), []
    for token in vocabulary:
        if token not in seen and token.strip():
            seen.add(token)
            unique.append(token)
    validate_vocabulary(unique, source="learned vocabulary")
    return unique


def main(argv=None):
    """Runs the vocabulary job.

    Args:
        argv: list[str] or None, command-line arguments.

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", required=True, help="text files or globs")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--cased", action="store_true", help="keep case and accents")
    parser.add_argument("--output", default="vocab.txt", help="where to write vocab.txt")
    parser.add_argument("--unused-tokens", type=int, default=0, help="[unusedN] placeholders to reserve")
    args = parser.parse_args(argv)
    files = _expand(args.corpus)
    vocabulary = build_vocabulary(files, args.vocab_size, args.cased, args.unused_tokens)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(vocabulary) + "\n")
    print(f"wrote {len(vocabulary)} tokens to {args.output} from {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
