"""A WordPiece vocabulary learned from the Beam pipeline's word counts against one learned from a sample.

    python -m benchmarks.vocab_counts --json benchmarks/results/vocab_counts.json     # 16 MB and 100 MB
    python -m benchmarks.vocab_counts --sizes-mb 16                                    # one size only

For each corpus size (built in --work-dir as `benchmarks.pretraining_data` builds them: english_books and
Machado de Assis, repeated with distinct documents) it runs, one after the other as separate processes,
`python -m training.prepare_pretraining --vocab-only`:

- `--vocab-from sample`: the default path, `--vocab-sample-mb` MB from the heads of the files;
- `--vocab-from counts --runner DirectRunner --num-workers N`: every word of the corpus counted by the
  pipeline's workers, summed per word, the vocabulary learned from the counts by the driver.

It reports each job's wall seconds (start-up included) and peak RSS (driver and workers), the words the
pipeline counted, and the share of the counts vocabulary that the sample vocabulary also holds. A corpus no
larger than the sample must give the same vocabulary both ways.
"""

import argparse
import json
import os
import re
import sys

from benchmarks.pretraining_data import build_corpus, run_measured, source_documents


def vocabulary_command(files, out, vocab_from, *, vocab_size, sample_mb, workers):
    command = [sys.executable, "-m", "training.prepare_pretraining", "--corpus", *files, "--out", out,
               "--vocab-only", "--vocab-size", str(vocab_size), "--vocab-sample-mb", str(sample_mb),
               "--vocab-from", vocab_from]
    if vocab_from == "counts":
        command += ["--runner", "DirectRunner", "--num-workers", str(workers),
                    "--direct_running_mode", "multi_processing"]
    return command


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="/tmp/vocab_counts_bench")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[16, 100])
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--sample-mb", type=float, default=64, help="--vocab-sample-mb of the sample path")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    lines = source_documents()
    results = {"vocab_size": args.vocab_size, "sample_mb": args.sample_mb, "workers": args.workers, "runs": []}
    for size in args.sizes_mb:
        base = os.path.join(args.work_dir, f"{size:g}mb")
        files = build_corpus(lines, os.path.join(base, "corpus"), size)
        corpus_mb = sum(os.path.getsize(f) for f in files) / 2**20
        run = {"corpus_mb": round(corpus_mb, 1)}
        for vocab_from in ("sample", "counts"):
            out = os.path.join(base, vocab_from)
            log = os.path.join(base, f"{vocab_from}.log")
            command = vocabulary_command(files, out, vocab_from, vocab_size=args.vocab_size,
                                         sample_mb=args.sample_mb, workers=args.workers)
            run[vocab_from] = run_measured(command, log)
            with open(log, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            found = re.search(r"vocabulary: (\d+) tokens learned from the counts of (\d+) distinct words "
                              r"\((\d+) in all\)", text)
            if found:
                run[vocab_from].update(distinct_words=int(found.group(2)), words=int(found.group(3)))
            run[vocab_from]["tokens"] = len(_read(os.path.join(out, "vocab.txt")))
        sample = _read(os.path.join(base, "sample", "vocab.txt"))
        counts = _read(os.path.join(base, "counts", "vocab.txt"))
        run["identical"] = sample == counts
        run["counts_tokens_in_sample_share"] = round(len(set(counts) & set(sample)) / len(counts), 4)
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
