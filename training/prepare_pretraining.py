"""Creates BERT pretraining TFRecords (NSP pairs + masked LM) from text corpora.

Documents are separated by blank lines; one sentence or paragraph per line.
Usage (from the repository root):
    python -m training.prepare_pretraining --corpus ../shared/data/english_books/*.txt \
        --vocab ../shared/data/vocab/bert-base-uncased/vocab.txt --out /tmp/pretrain --max-seq-length 128
"""

import glob
import sys


def main(argv=None):
    """Runs the pretraining-data job and prints its statistics.

    Args:
        argv: list[str] or None, command-line arguments.

    Returns:
        int: exit status.
    """
    from keras_bert.trainer import JobArgumentParser, JobHelpFormatter

    parser = JobArgumentParser(description=__doc__, formatter_class=JobHelpFormatter)
    parser.add_argument("--corpus", nargs="+", required=True, help="text files or globs (blank line between documents)")
    parser.add_argument("--vocab", required=True, help="WordPiece vocab.txt")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (e.g. BERTimbau)")
    parser.add_argument("--max-seq-length", type=int, default=128, help="packed length in word pieces")
    parser.add_argument("--max-predictions-per-seq", type=int, default=20, help="masked positions per sequence")
    parser.add_argument("--masked-lm-prob", type=float, default=0.15, help="share of tokens masked")
    parser.add_argument("--dupe-factor", type=int, default=10, help="passes over the corpus, each with new masks")
    parser.add_argument("--short-seq-prob", type=float, default=0.1, help="share of shorter sequences")
    parser.add_argument("--whole-word-masking", action="store_true", help="mask all pieces of a word together")
    parser.add_argument("--dynamic-masking", action="store_true",
                        help="write unmasked instances (mask on the fly with pretraining_dataset)")
    parser.add_argument("--num-shards", type=int, default=1, help="TFRecord files to write")
    parser.add_argument("--gzip", action="store_true", help="GZIP-compress the shards")
    parser.add_argument("--seed", type=int, default=12345, help="seeds the pairs and the masks")
    parser.add_argument("--invalid-utf8", choices=("error", "replace"), default="error",
                        help="a corpus line that is not UTF-8: stop with the file and line, or decode it with "
                             "U+FFFD replacement and count it")
    args = parser.parse_args(argv)

    from keras_bert.data import shard_statistics, write_pretraining_data
    from keras_bert.tokenization import BertTokenizer

    files = []
    for pattern in args.corpus:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise SystemExit(f"error: --corpus {pattern!r} matches no file")
        files.extend(matches)
    tokenizer = BertTokenizer(args.vocab, lowercase=not args.cased)
    paths, stats = write_pretraining_data(
        files,
        tokenizer,
        args.out,
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        num_shards=args.num_shards,
        compression="GZIP" if args.gzip else None,
        dupe_factor=args.dupe_factor,
        short_seq_prob=args.short_seq_prob,
        masked_lm_prob=args.masked_lm_prob,
        whole_word_masking=args.whole_word_masking,
        mask=not args.dynamic_masking,
        seed=args.seed,
        invalid_utf8=args.invalid_utf8,
    )
    print(stats.summary())
    print(f"shards: {len(paths)} in {args.out}")
    if not args.dynamic_masking:
        print(f"shard check: {shard_statistics(paths, tokenizer.mask_token_id)}")
    return 0


if __name__ == "__main__":
    from keras_bert.trainer import run

    sys.exit(run(main))
