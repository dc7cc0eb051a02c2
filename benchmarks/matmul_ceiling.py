"""How fast could a BERT training step or inference call be here if it were nothing but its matmuls?

Times every matmul of a BERT-mini / BERT-base step alone, at its real shape (forward, and for training the
input and weight gradients), with and without XLA, and sums the faster time of each. That sum estimates
the best any implementation of the same FLOPs can do on this machine: softmax, GELU, LayerNorm, dropout,
the loss and the optimizer come on top. It is an estimate, not a bound: each matmul is timed in the plain
`a @ b` layout (a model's transposed operands run a little faster or slower) and best-of-`--reps` timings
on a shared machine move by up to 10% between runs, so a measured model can land a few percent above it. The last lines compare it with the throughputs that
`benchmarks.compare` recorded (`--compare results.json`), so a target can be checked for feasibility.

    python -m benchmarks.matmul_ceiling --compare benchmarks/results/compare_full.json
"""

import argparse
import json

from benchmarks.harness import CONFIGS, PREDICTIONS, best_matmul_seconds, matmul_peak

TARGETS = {"base": 1.1, "mini": 1.5}  # float32 ours / keras-hub, issue 7


def matmuls(config, seq, batch, mode):
    """(name, count, batch_dims, m, k, n) of every matmul of one forward (and backward) pass."""
    d, ff, heads, L = config.hidden_size, config.intermediate_size, config.num_heads, config.num_layers
    tokens, dh = batch * seq, config.hidden_size // config.num_heads
    forward = [("qkv", L, (), tokens, d, 3 * d), ("attention_output", L, (), tokens, d, d),
               ("ffn_in", L, (), tokens, d, ff), ("ffn_out", L, (), tokens, ff, d),
               ("scores", L, (batch * heads,), seq, dh, seq), ("context", L, (batch * heads,), seq, seq, dh)]
    if mode == "infer":
        return forward
    rows = batch * PREDICTIONS
    forward += [("mlm_dense", 1, (), rows, d, d), ("mlm_vocab", 1, (), rows, d, config.vocab_size)]
    # Backward: the input gradient is (m x n) @ (n x k), the weight gradient (k x m) @ (m x n).
    backward = []
    for name, count, bdims, m, k, n in forward:
        backward += [(name + "/d_input", count, bdims, m, n, k), (name + "/d_weight", count, bdims, k, m, n)]
    return forward + backward


def matmul_flops(batch_dims, m, k, n):
    """FLOPs of one (batched) `[m, k] x [k, n]` matmul."""
    flops = 2 * m * k * n
    for size in batch_dims:
        flops *= size
    return flops


def time_matmul(bdims, m, k, n, xla, reps):
    import tensorflow as tf

    a = tf.random.normal(bdims + (m, k))
    b = tf.random.normal(bdims + (k, n))
    return best_matmul_seconds(tf.function(tf.matmul, jit_compile=xla), a, b, reps)


def ceiling(name, mode, reps):
    import keras_bert

    preset, seq, batch = CONFIGS[name]
    config = keras_bert.BertConfig.from_preset(preset)
    total_time, total_flops, rows = 0.0, 0, []
    for op, count, bdims, m, k, n in matmuls(config, seq, batch, mode):
        seconds = min(time_matmul(bdims, m, k, n, xla, reps) for xla in (False, True))
        flops = matmul_flops(bdims, m, k, n)
        total_time += count * seconds
        total_flops += count * flops
        rows.append(dict(op=op, count=count, shape=list(bdims) + [m, k, n], ms=seconds * 1e3,
                         gflops=flops / seconds / 1e9))
    return dict(config=name, mode=mode, batch=batch, matmul_seconds=total_time, matmul_gflop=total_flops / 1e9,
                ceiling_seq_s=batch / total_time, ops=rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["mini-128", "mini-512", "base-128"], choices=sorted(CONFIGS))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--compare", default=None, help="a `benchmarks.compare --json` file to set beside")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    peak = matmul_peak()["float32"]
    print(f"float32 matmul peak (3072^3): {peak:.0f} GFLOP/s")
    measured = json.load(open(args.compare))["results"] if args.compare else []
    results = []
    for name in args.configs:
        for mode in ("step", "infer"):
            r = ceiling(name, mode, args.reps)
            results.append(r)
            slow = sorted(r["ops"], key=lambda o: o["gflops"])[:3]
            print(f"{name:9s} {mode:6s} matmuls alone: {r['matmul_seconds'] * 1e3:7.1f} ms/batch "
                  f"= {r['ceiling_seq_s']:7.2f} seq/s at most ({r['matmul_gflop'] / r['matmul_seconds']:.0f} GFLOP/s); "
                  "slowest: " + ", ".join(f"{o['op']} {o['gflops']:.0f}" for o in slow))
            best = {}  # variant -> best measured seq/s (XLA on or off)
            for row in measured:
                if row["config"] == name and row["mode"] == mode and row["dtype"] == "float32":
                    best[row["variant"]] = max(best.get(row["variant"], 0.0), row["seq_per_s"])
            for variant, seq_s in sorted(best.items(), reverse=True):  # ours first
                print(f"    {variant} measured best {seq_s:.2f} seq/s = "
                      f"{seq_s / r['ceiling_seq_s']:.0%} of the matmul-only ceiling")
            if "hub-f32" in best:
                target = TARGETS[name.split("-")[0]]
                print(f"    the issue's target, {target}x keras-hub's best = {target * best['hub-f32']:.2f} seq/s = "
                      f"{target * best['hub-f32'] / r['ceiling_seq_s']:.0%} of the ceiling")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(peak_gflops=peak, results=results), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
