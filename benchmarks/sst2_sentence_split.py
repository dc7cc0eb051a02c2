"""A held-out split of SST-2 train for choosing distillation settings without dev: whole sentences out.

SST-2's training file holds phrases of about 8,500 review sentences, so a slice of its lines shares words and
sub-phrases with the rest and rewards memorising the transfer set. This split holds out whole sentences (lines
that no other line contains, of at least `--min-words` words, like the dev sentences) and drops from training
every line that occurs inside one of them, so the held-out sentences and all their phrases are unseen:

    python -m benchmarks.sst2_sentence_split --out-dir DIR [--sentences 1500] [--seed 0]

writes DIR/train.tsv and DIR/val.tsv (the `sentence<TAB>label` format of the input, with its header).
"""

import argparse
import os
import random

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2", "train.tsv")


def read_lines(path):
    """The header and the `(sentence, label)` rows of an SST-2 TSV file."""
    with open(path, encoding="utf-8") as f:
        header, *lines = f.read().splitlines()
    rows = []
    for number, line in enumerate(lines, start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise SystemExit(f"error: {path}:{number}: expected sentence<TAB>label, got {len(fields)} fields")
        rows.append((" ".join(fields[0].split()), fields[1]))
    return header, rows


def split(rows, sentences, min_words, seed):
    """`(train_rows, held_out_rows)`: `sentences` random whole sentences out, and every row inside one of them."""
    padded = "\n".join(f" {text} " for text, _ in rows)  # Word-boundary matches: " good " in " a good film ".
    candidates = [i for i, (text, _) in enumerate(rows)
                  if len(text.split()) >= min_words and padded.count(f" {text} ") == 1]
    if len(candidates) < sentences:
        raise SystemExit(f"error: only {len(candidates)} whole sentences of >= {min_words} words")
    held = set(random.Random(seed).sample(candidates, sentences))
    held_text = "\n".join(f" {rows[i][0]} " for i in sorted(held))
    train = [row for i, row in enumerate(rows) if i not in held and f" {row[0]} " not in held_text]
    return train, [rows[i] for i in sorted(held)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-file", default=TRAIN)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--min-words", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.path.exists(args.train_file):
        raise SystemExit(f"error: {args.train_file} not found (the SST-2 data of ../shared/data/sst2)")
    header, rows = read_lines(args.train_file)
    train, held = split(rows, args.sentences, args.min_words, args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, part in (("train.tsv", train), ("val.tsv", held)):
        with open(os.path.join(args.out_dir, name), "w", encoding="utf-8") as f:
            f.write(header + "\n" + "".join(f"{text}\t{label}\n" for text, label in part))
    print(f"[sst2_sentence_split] {len(held)} held-out sentences, {len(train)} training lines "
          f"({len(rows) - len(train) - len(held)} dropped as phrases of held-out sentences) in {args.out_dir}")


if __name__ == "__main__":
    main()
