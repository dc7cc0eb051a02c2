"""Creates BERT pretraining TFRecords (NSP pairs + masked LM) from text corpora.

Documents are separated by blank lines; one sentence or paragraph per line.
Usage (from the repository root):
    python -m training.prepare_pretraining --corpus ../shared/data/english_books/*.txt \
        --vocab ../shared/data/vocab/bert-base-uncased/vocab.txt --out /tmp/pretrain --max-seq-length 128

With `--runner` (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...) the same instances are built by
an Apache Beam pipeline (keras_bert.data.beam_pretraining, `pip install .[beam]`) that streams the corpus:
"random next" segments come from the document's shuffle group (`--group-size`), and any option the job does
not know is passed to Beam (e.g. `--project`, `--region`, `--temp_location`).
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
    parser.add_argument("--vocab", help="WordPiece vocab.txt; without it one is learned from a sample of the corpus")
    parser.add_argument("--vocab-size", type=int, default=30000, help="size of a vocabulary learned from the corpus")
    parser.add_argument("--vocab-sample-mb", type=float, default=64, help="MB of corpus text the vocabulary is learned from")
    parser.add_argument("--vocab-from", choices=("sample", "counts"), default="sample",
                        help="without --vocab: learn from a sample (--vocab-sample-mb, the head of every file) or "
                             "from the word counts of the whole corpus, aggregated by the Beam pipeline "
                             "(needs --runner)")
    parser.add_argument("--vocab-only", action="store_true",
                        help="learn OUT/vocab.txt (no --vocab) and stop; later runs take it with --vocab")
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
    parser.add_argument("--on-bad-file", choices=("fail", "report"), default="fail",
                        help="a corpus line that is not UTF-8: fail naming the file and line, or decode it with "
                             "U+FFFD replacement and count it per file (with --runner, unreadable files are "
                             "skipped and reported too)")
    parser.add_argument("--no-shard-check", action="store_true",
                        help="do not read the shards back for the 'shard check' line (a pass over the output)")
    beam = parser.add_argument_group("Apache Beam (with --runner)")
    beam.add_argument("--runner", help="Beam runner name: DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...")
    beam.add_argument("--num-workers", type=int, default=1, help="DirectRunner processes (other runners: workers)")
    beam.add_argument("--group-size", type=int, default=1000,
                      help="documents per shuffle group ('random next' segments come from the same group)")
    beam.add_argument("--chunk-mb", type=float, default=8, help="MB of a corpus file one worker scans at a time")
    beam.add_argument("--retries", type=int, default=2,
                      help="runs a failed pipeline again (not bad input: e.g. a killed worker, which the "
                           "DirectRunner does not retry), reusing the shuffle groups already complete")
    args, pipeline_args = parser.parse_known_args(argv)
    if pipeline_args and not args.runner:
        parser.error(f"unrecognized arguments: {' '.join(pipeline_args)} (Beam options need --runner)")
    if args.vocab_from == "counts" and not (args.runner and args.vocab is None):
        parser.error("--vocab-from counts needs --runner (the pipeline counts the words) and no --vocab")
    if args.vocab_only and args.vocab is not None:
        parser.error("--vocab-only learns a vocabulary: give no --vocab")
    if args.group_size < 2 or args.num_workers < 1 or args.retries < 0:
        parser.error("--group-size must be >= 2 (a document needs others for 'random next'), --num-workers >= 1 "
                     "and --retries >= 0")

    import os

    from keras_bert.data import shard_statistics, write_pretraining_data
    from keras_bert.tokenization import (BertTokenizer, learn_vocabulary_from_counts, learn_vocabulary_from_sample,
                                         write_vocabulary)

    files = []
    for pattern in args.corpus:
        if "://" in pattern:  # gs://, hdfs://: the Beam pipeline reads these with tf.io.gfile.
            import tensorflow as tf

            matches = sorted(tf.io.gfile.glob(pattern))
        else:
            matches = sorted(glob.glob(pattern))
        if not matches:
            raise SystemExit(f"error: --corpus {pattern!r} matches no file")
        files.extend(matches)
    beam_options = dict(runner=args.runner, num_workers=args.num_workers, pipeline_args=pipeline_args,
                        chunk_bytes=max(1, int(args.chunk_mb * 2**20)), on_bad_file=args.on_bad_file,
                        retries=args.retries)
    vocab = args.vocab
    if vocab is None:
        vocab = os.path.join(args.out, "vocab.txt")
        if args.vocab_from == "counts":
            from keras_bert.data.beam_pretraining import count_corpus_words

            counts = count_corpus_words(files, args.out, cased=args.cased, **beam_options)
            tokens = learn_vocabulary_from_counts(counts, args.vocab_size)
            source = f"the counts of {len(counts)} distinct words ({sum(counts.values())} in all) of the corpus"
        else:
            tokens = learn_vocabulary_from_sample(files, args.vocab_size, int(args.vocab_sample_mb * 2**20),
                                                  cased=args.cased)
            source = f"{args.vocab_sample_mb:g} MB of the corpus"
        write_vocabulary(tokens, vocab)
        print(f"vocabulary: {len(tokens)} tokens learned from {source} -> {vocab}")
        if args.vocab_only:
            return 0
    options = dict(
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
    )
    if args.runner:
        from keras_bert.data.beam_pretraining import run_pretraining_pipeline

        paths, stats = run_pretraining_pipeline(files, vocab, args.out, lowercase=not args.cased,
                                                group_size=args.group_size, **beam_options, **options)
    else:
        invalid_utf8 = "error" if args.on_bad_file == "fail" else "replace"
        paths, stats = write_pretraining_data(files, BertTokenizer(vocab, lowercase=not args.cased), args.out,
                                              invalid_utf8=invalid_utf8, **options)
    print(stats.summary())
    print(f"shards: {len(paths)} in {args.out}")
    if not args.dynamic_masking and not args.no_shard_check:
        mask_token_id = BertTokenizer(vocab, lowercase=not args.cased).mask_token_id
        print(f"shard check: {shard_statistics(paths, mask_token_id)}")
    return 0


if __name__ == "__main__":
    from keras_bert.trainer import run

    sys.exit(run(main))
