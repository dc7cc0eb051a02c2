"""Writes, for each input line, its word-piece ids (space separated) via the in-graph tokenizer.

No [CLS]/[SEP], no truncation; an empty line gives an empty line.
Usage (from the repository root):
    python -m training.tokenize --vocab vocab.txt [--cased] --input in.txt --output ids.txt
"""

import sys


def main(argv=None):
    """Runs the tokenize job.

    Args:
        argv: list[str] or None, command-line arguments.

    Returns:
        int: exit status.
    """
    from keras_bert.trainer import JobArgumentParser, JobHelpFormatter

    parser = JobArgumentParser(description=__doc__, formatter_class=JobHelpFormatter)
    parser.add_argument("--vocab", required=True, help="WordPiece vocab.txt")
    parser.add_argument("--cased", action="store_true", help="keep case and accents")
    parser.add_argument("--input", required=True, help="text file, one text a line")
    parser.add_argument("--output", required=True, help="where the word pieces go, one line per input line")
    parser.add_argument("--batch-size", type=int, default=4096, help="lines tokenized at a time")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_bert.tokenization import BertTokenizer

    tokenizer = BertTokenizer(args.vocab, lowercase=not args.cased)
    tokenize = tf.function(lambda lines: tokenizer(lines), input_signature=[tf.TensorSpec([None], tf.string)])
    lines_read = invalid = 0
    with open(args.input, "rb") as source, open(args.output, "w", encoding="utf-8") as target:
        batch = []

        def flush():
            if batch:
                for ids in tokenize(tf.constant(batch)).to_list():
                    target.write(" ".join(map(str, ids)) + "\n")
                batch.clear()

        for raw in source:
            line = raw.rstrip(b"\r\n")
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                invalid += 1  # the tokenizer deletes invalid bytes (as U+FFFD, like BERT)
            batch.append(line)
            lines_read += 1
            if len(batch) >= args.batch_size:
                flush()
        flush()
    print(f"tokenized {lines_read} lines into {args.output}; lines with invalid UTF-8 (bytes dropped): {invalid}")
    return 0


if __name__ == "__main__":
    from keras_bert.trainer import run

    sys.exit(run(main))
