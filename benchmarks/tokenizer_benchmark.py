"""Tokenizer throughput: keras_bert BertTokenizer (in-graph) vs HF `tokenizers` on the same lines.

Not a test. Usage (from the repository root):
    python -m benchmarks.tokenizer_benchmark [--corpus GLOB] [--vocab FILE] [--cased] [--batch-size N] [--repeats R]
Prints tokens/s for both and the ratio (ours / HF). HF uses `encode_batch` (multi-threaded Rust).
"""

import argparse
import glob
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO_ROOT, "..", "shared", "data")


def main(argv=None):
    """Runs the benchmark.

    Args:
        argv: list[str] or None, command-line arguments.

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default=os.path.join(DATA, "english_books", "*.txt"))
    parser.add_argument("--vocab", default=os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt"))
    parser.add_argument("--cased", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tensorflow as tf
    from tokenizers import BertWordPieceTokenizer

    from keras_bert.tokenization import BertTokenizer

    files = sorted(glob.glob(args.corpus))
    if not files or not os.path.exists(args.vocab):
        print(f"data not found ({args.corpus}, {args.vocab}); nothing to benchmark")
        return 1
    lines = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle)
    lowercase = not args.cased
    ours = BertTokenizer(args.vocab, lowercase=lowercase)
    tokenize = tf.function(lambda x: ours(x).flat_values, input_signature=[tf.TensorSpec([None], tf.string)])
    batches = [tf.constant(lines[i : i + args.batch_size]) for i in range(0, len(lines), args.batch_size)]
    hf = BertWordPieceTokenizer(args.vocab, lowercase=lowercase, strip_accents=lowercase,
                                clean_text=True, handle_chinese_chars=True)
    hf_batches = [lines[i : i + args.batch_size] for i in range(0, len(lines), args.batch_size)]

    tokenize(batches[0])  # trace
    best_ours = best_hf = float("inf")
    tokens = 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        tokens = sum(int(tokenize(b).shape[0]) for b in batches)
        best_ours = min(best_ours, time.perf_counter() - start)
        start = time.perf_counter()
        hf_tokens = sum(len(e.ids) for b in hf_batches for e in hf.encode_batch(b, add_special_tokens=False))
        best_hf = min(best_hf, time.perf_counter() - start)
        start = time.perf_counter()  # HF's best case: the whole corpus in one encode_batch call
        hf.encode_batch(lines, add_special_tokens=False)
        best_hf = min(best_hf, time.perf_counter() - start)
    print(f"lines: {len(lines)}, word pieces: {tokens} (HF: {hf_tokens}), batch size {args.batch_size}, "
          f"CPU cores: {os.cpu_count()}")
    print(f"keras_bert BertTokenizer: {tokens / best_ours:,.0f} tokens/s ({best_ours:.2f} s)")
    print(f"HF tokenizers encode_batch (best of batched / whole corpus): {hf_tokens / best_hf:,.0f} tokens/s ({best_hf:.2f} s)")
    print(f"ratio (ours / HF): {best_hf / best_ours * tokens / max(hf_tokens, 1):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
