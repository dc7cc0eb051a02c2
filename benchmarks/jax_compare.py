"""keras_bert vs keras-hub on Keras' JAX backend (a GPU when JAX sees one), with Hugging Face alongside.

    python -m benchmarks.jax_compare                                   # bert_mini and bert_base, f32 + bf16
    python -m benchmarks.jax_compare --configs base-128 --batch-scale 8 --json out.json
    python -m benchmarks.jax_compare --report first.json later.json    # tables of recorded runs

The layers and models of `keras_bert` are written in `keras.ops` only; this harness runs them where
TensorFlow is absent (the GPU machines here have JAX and PyTorch), one process per run:

  ours, hub  `benchmarks.harness`' variants, as `compare` runs them (same shapes, same random batch, same MLM+NSP loss),
             built with KERAS_BACKEND=jax. step: `jax.jit` of `stateless_call` +
             `jax.value_and_grad` + `keras.optimizers.AdamW.stateless_apply`; infer: `jax.jit` of
             the encoder's `stateless_call(training=False)`. bfloat16 is Keras' `mixed_bfloat16`.
  hf         `benchmarks.peers`' Hugging Face `BertForPreTraining` on the same device (bfloat16:
             `torch.autocast`), eager unless `--hf-compile on`, when torch and transformers are installed.

Variants of one path run alternately (order reversed every round); the figure is the median over
rounds. `--batch-scale K` multiplies the harness' batch sizes (16, 32, 8), which leave a GPU idle.
The matmul peak is JAX's `jnp.matmul` at its default precision (TF32 on a recent NVIDIA GPU for
float32); PyTorch's is printed beside it.
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

from benchmarks import harness, peers


def jax_matmul_peak(n, reps=5):
    """Best GFLOP/s of an n x n x n `jnp.matmul` per dtype, at JAX's default precision."""
    import jax
    import jax.numpy as jnp

    matmul = jax.jit(jnp.matmul)
    peaks = {}
    for dtype in harness.DTYPES:
        a = jax.random.normal(jax.random.key(0), (n, n), dtype=dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype=dtype)
        seconds = harness.best_matmul_seconds(matmul, a, b, reps, wait=lambda result: result.block_until_ready())
        peaks[dtype] = 2 * n ** 3 / seconds / 1e9
    return peaks


def jax_runner(variant, mode, x, y, steps):
    """`(warmup(), run())` of a `harness.Variant` on the JAX backend; `run()` returns None."""
    import jax
    import keras

    if mode == "step":
        model = variant.pretrainer
        optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01)
        optimizer.build(model.trainable_variables)
        xin = {k: jax.numpy.asarray(v) for k, v in variant.inputs(x).items()}
        yin = {k: jax.numpy.asarray(v) for k, v in y.items() if k != "class_labels"}

        def loss_fn(trainable, non_trainable, xb, yb):
            outputs, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
            return harness.pretraining_loss(yb, outputs), non_trainable

        @jax.jit
        def train_step(trainable, non_trainable, optimizer_state, xb, yb):
            (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                trainable, non_trainable, xb, yb)
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
            return loss, trainable, non_trainable, optimizer_state

        # The model's own variables stay untouched (the encoder is shared with the infer path).
        state = [[v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
                 [v.value for v in optimizer.variables]]

        def run(n=steps):
            for _ in range(n):
                loss, *state[:] = train_step(*state, xin, yin)
            float(loss)  # blocks until the last step is done

        return (lambda: run(1)), run

    if mode == "infer":
        model = variant.encoder
        xin = {k: jax.numpy.asarray(v) for k, v in variant.encoder_inputs(x).items()}
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def infer(trainable, non_trainable, xb):
            outputs, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
            return outputs["sequence_output"], outputs["pooled_output"]

        def run(n=steps):
            for _ in range(n):
                out = infer(trainable, non_trainable, xin)
            out[1].block_until_ready()

        return (lambda: run(1)), run
    raise ValueError(f"jax_compare has no path {mode!r} (it runs step and infer)")


def hf_device():
    """The torch device of the hf peer: the GPU when PyTorch sees one, else the CPU; None when it can't run."""
    missing = harness.missing_modules("hf")
    if missing:
        print(f"hf peer skipped: {', '.join(missing)} not installed", flush=True)
        return None
    if importlib.util.find_spec("tensorflow"):  # keras-hub imports it where installed
        print("hf peer skipped: TensorFlow is installed, keras-hub loads it, and PyTorch beside it crashes "
              "(run where only JAX and PyTorch are, as on the GPU machines)", flush=True)
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_config(name, args, hf_on):
    import keras

    import keras_bert

    preset, seq, batch = harness.CONFIGS[name]
    batch *= args.batch_scale
    config = keras_bert.BertConfig.from_preset(preset, hidden_act="gelu_new")
    x, y = harness.random_batch(config, seq, batch)
    variants = [harness.Variant(p, d, config) for d in args.dtypes for p in harness.PACKAGES]
    # A dtype PyTorch has no fast matmul for here (bfloat16 on most CPUs) is left out, as in benchmarks.peers.
    hf_variants = [peers.HfVariant(d, config, hf_on) for d in args.dtypes
                   if args.torch_peaks.get(d, 0) >= peers.MIN_MATMUL_GFLOPS] if hf_on else []
    peak = args.peaks
    rows = []
    for mode in args.paths:
        steps = args.steps if mode == "step" else args.infer_steps
        runners = {v.name: jax_runner(v, mode, x, y, steps) for v in variants}
        meta = {v.name: (v.package, v.dtype, True, v.name) for v in variants}
        hf_runners, hf_meta = peers.hf_runners(hf_variants, mode, args.hf_compile, x, y, steps)
        runners.update(hf_runners)
        meta.update(hf_meta)
        rows += harness.measure(runners, meta, args.rounds, config, name, preset, seq, batch, mode, steps, peak)
        keras.backend.clear_session()
    return rows


def print_ratios(rows):
    print("\nRatios (sequences/s), same config, path and dtype:")
    for r in rows:
        if r["package"] != "ours":
            continue
        for other in rows:
            same = all(other[k] == r[k] for k in ("config", "mode", "dtype"))
            if same and other["package"] != "ours":
                label = other["variant"] + (" (torch.compile)" if other["package"] == "hf" and other["xla"] else "")
                print(f"  {r['config']:9s} b{r['batch']:<4d} {r['mode']:5s} {r['dtype']:8s} ours / {label}: "
                      f"{r['seq_per_s'] / other['seq_per_s']:.2f}x")


def report(paths):
    rows = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        print(f"{path}: {data['command']} ({data['device']['kind']}, JAX {data['jax']}, Keras {data['keras']})")
        for r in data["results"]:
            rows[tuple(r[k] for k in ("config", "batch", "mode", "variant", "xla"))] = r
    for batch_rows in _by_batch_scale(list(rows.values())):
        print()
        harness.print_table(batch_rows)
        print_ratios(batch_rows)


def _by_batch_scale(rows):
    """Rows grouped by batch size relative to compare's, so each table holds one scale."""
    groups = {}
    for r in rows:
        groups.setdefault(r["batch"] // harness.CONFIGS[r["config"]][2], []).append(r)
    return [groups[k] for k in sorted(groups)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(harness.DEFAULT_CONFIGS), choices=sorted(harness.CONFIGS))
    parser.add_argument("--paths", nargs="+", default=["step", "infer"], choices=["step", "infer"])
    parser.add_argument("--dtypes", nargs="+", default=list(harness.DTYPES), choices=list(harness.DTYPES))
    parser.add_argument("--batch-scale", type=int, default=1, help="multiply compare's batch sizes by this")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed call")
    parser.add_argument("--infer-steps", type=int, default=10, help="inference calls per timed call")
    parser.add_argument("--no-hf", action="store_true", help="leave out the Hugging Face peer")
    parser.add_argument("--hf-compile", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--report", nargs="+", default=None, metavar="JSON",
                        help="print the table of earlier --json outputs instead of running; a later file's row "
                             "replaces an earlier one of the same config, batch, path, variant and xla")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # PyTorch shares the device
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"Keras was already loaded with the {keras.backend.backend()!r} backend")
    device = jax.devices()[0]
    hf_on = None if args.no_hf else hf_device()
    n = 8192 if device.platform == "gpu" else 2048
    args.peaks = jax_matmul_peak(n)
    args.torch_peaks = torch_peaks = peers.torch_matmul_peak(hf_on, args.dtypes, n=n) if hf_on else {}
    print(f"JAX {jax.__version__} on {device.device_kind} ({device.platform}); Keras {keras.__version__}; "
          f"hf peer: {hf_on or 'not run'}", flush=True)
    print(f"matmul peak GFLOP/s, jnp {n}^3: {args.peaks}; torch: {torch_peaks}", flush=True)
    started, rows = time.time(), []
    for name in args.configs:
        rows.extend(run_config(name, args, hf_on))
    print()
    harness.print_table(rows)
    print_ratios(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(command=" ".join(["python -m benchmarks.jax_compare"] + (argv or sys.argv[1:])),
                           device=dict(kind=device.device_kind, platform=device.platform, host=platform.processor(),
                                       cpus=os.cpu_count()),
                           jax=jax.__version__, keras=keras.__version__, peaks=args.peaks, torch_peaks=torch_peaks,
                           seconds=time.time() - started, results=rows), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
