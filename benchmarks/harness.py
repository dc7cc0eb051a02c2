"""What the benchmarks share: model configurations, FLOPs, the random batch, the variants and their runners,
alternating timing and result rows, and which optional peers can run.

`benchmarks.compare` (ours vs keras-hub), `benchmarks.peers` (PyTorch, ONNX Runtime), `benchmarks.jax_compare`,
`benchmarks.matmul_ceiling` and `benchmarks.profile_xla` build on it (compare and peers on it, not on each other:
compare runs peers as a subprocess). It imports TensorFlow (and Keras) only inside its functions, so a caller
can still set XLA_FLAGS or KERAS_BACKEND first.
"""

import importlib.util
import os
import platform
import statistics
import time

# name -> (preset, sequence length, batch size)
CONFIGS = {
    "mini-128": ("bert_mini", 128, 32),
    "mini-512": ("bert_mini", 512, 8),
    "base-128": ("bert_base", 128, 16),
}
DEFAULT_CONFIGS = ("mini-128", "mini-512", "base-128")
PACKAGES = ("ours", "hub")
DTYPES = ("float32", "bfloat16")
# Ours only, inference paths: the float32 model after Keras `quantize("int8")` (`keras_bert.export.precision`).
INT8 = "int8"
PREDICTIONS = 20


# --------------------------------------------------------------------------- FLOPs

def flops_per_sequence(config, seq, mode):
    """Training or inference FLOPs of one sequence (performance-anchors.md formulas)."""
    L, d, V = config.num_layers, config.hidden_size, config.vocab_size
    n = 12 * L * d * d
    if mode in ("step", "fit"):
        return seq * (6 * n + 12 * L * seq * d) + 6 * (d * d + d * V) * PREDICTIONS
    return seq * (2 * n + 4 * L * seq * d)


# --------------------------------------------------------------------------- worker

MATMUL_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def machine_description():
    """CPU model, core count and the matmul-relevant ISA flags (`/proc/cpuinfo`), e.g. for the table header.

    bfloat16 runs on hardware only with `avx512_bf16` or `amx_bf16`; without them it is emulated.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        return f"{model}, {os.cpu_count()} CPUs"
    isa = [flag if flag in flags else f"no {flag}" for flag in MATMUL_ISA_FLAGS]
    return f"{model}, {os.cpu_count()} CPUs ({', '.join(isa)})"


def _set_policy(dtype, stored=False):
    import keras

    if dtype == "bfloat16":
        # `stored`: weights held in bfloat16, as `serving.export --precision bfloat16` loads them.
        keras.config.set_dtype_policy("bfloat16" if stored else "mixed_bfloat16")
    else:
        keras.config.set_dtype_policy("float32")


def best_matmul_seconds(matmul, a, b, reps, wait=lambda result: result.numpy()):
    """Fastest of `reps` timed calls of `matmul(a, b)` (after one untimed call).

    `wait(result)` blocks until the result is computed (default: TensorFlow's `.numpy()`).
    """
    wait(matmul(a, b))
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        wait(matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(n=3072, reps=4, int8=False):
    """Best GFLOP/s of an n x n x n tf.matmul, float32 and bfloat16 (and int8 x int8 -> int32 under XLA, GOP/s).

    int8 is timed under XLA because that is where TensorFlow's int8 matmul is fast on CPU (plain
    `tf.matmul` runs it in Eigen, slower than float32); the int8 models run under XLA too.
    """
    import tensorflow as tf

    peaks = {}
    for dtype in DTYPES:
        a = tf.random.normal((n, n), dtype=tf.float32)
        b = tf.random.normal((n, n), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
        peaks[dtype] = 2 * n ** 3 / best_matmul_seconds(tf.matmul, a, b, reps) / 1e9
    if int8:
        a, b = (tf.cast(tf.random.uniform((n, n), -127, 128, tf.int32), tf.int8) for _ in range(2))
        matmul = tf.function(lambda x, y: tf.matmul(x, y, output_type=tf.int32), jit_compile=True)
        peaks[INT8] = 2 * n ** 3 / best_matmul_seconds(matmul, a, b, reps) / 1e9
    return peaks


def random_batch(config, seq, batch, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1000, config.vocab_size, size=(batch, seq)).astype("int32")
    token_ids[:, 0] = 101
    token_ids[:, seq // 2] = 102
    token_ids[:, -1] = 102
    segment_ids = np.zeros((batch, seq), "int32")
    segment_ids[:, seq // 2 + 1:] = 1
    padding_mask = np.ones((batch, seq), "int32")
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), PREDICTIONS, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    x = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
         "masked_positions": positions}
    y = {"mlm_labels": rng.integers(1000, config.vocab_size, size=(batch, PREDICTIONS)).astype("int32"),
         "mlm_weights": np.ones((batch, PREDICTIONS), "float32"),
         "nsp_labels": rng.integers(0, 2, size=(batch,)).astype("int32"),
         "class_labels": rng.integers(0, 2, size=(batch,)).astype("int32")}
    return x, y


class Variant:
    """One package at one dtype: a pretraining model (MLM+NSP outputs), an encoder, fit/predict models.

    `stored_bfloat16` (ours, bfloat16, inference only): the weights are stored in bfloat16 (the
    `"bfloat16"` policy of a bfloat16 export; LayerNorms stay float32) instead of cast from float32
    variables on every call (`"mixed_bfloat16"`, how a model trains).
    """

    def __init__(self, package, dtype, config, stored_bfloat16=False):
        import keras

        self.package, self.dtype, self.config = package, dtype, config
        self.name = f"{package}-{ {'bfloat16': 'bf16', INT8: 'int8'}.get(dtype, 'f32') }" + (
            "w" if stored_bfloat16 else "")
        self.inference_only = dtype == INT8 or stored_bfloat16
        if (dtype == INT8 or stored_bfloat16) and package != "ours":
            raise ValueError("the int8 and stored-bfloat16 variants are keras_bert's only")
        if stored_bfloat16 and dtype != "bfloat16":
            raise ValueError("stored_bfloat16 needs dtype 'bfloat16'")
        _set_policy(dtype, stored_bfloat16)
        keras.utils.set_random_seed(1)
        if package == "ours":
            import keras_bert

            self.encoder = keras_bert.BertEncoder(config)
            self.pretrainer = keras_bert.BertPretrainer(self.encoder)
            self.classifier = keras_bert.BertClassifier(self.encoder, num_classes=2)
            self.fit_model = self.pretrainer
            if dtype == INT8:
                from keras_bert.export.precision import quantize_int8

                quantize_int8(self.pretrainer)  # the encoder's layers (shared by the classifier) and the heads
        else:
            import keras_hub

            c = config
            self.encoder = keras_hub.models.BertBackbone(
                vocabulary_size=c.vocab_size, num_layers=c.num_layers, num_heads=c.num_heads,
                hidden_dim=c.hidden_size, intermediate_dim=c.intermediate_size, dropout=c.hidden_dropout,
                max_sequence_length=c.max_position_embeddings, num_segments=c.type_vocab_size)
            self.fit_model = keras_hub.models.BertMaskedLM(self.encoder, preprocessor=None)
            # MLM + NSP on ONE backbone call: BertMaskedLM's own head on the sequence output, a dense NSP
            # head on the pooled output (calling `fit_model` and the backbone separately would run it twice).
            nsp = keras.layers.Dense(2, name="nsp_head")
            inputs = dict(self.fit_model.input)
            encoded = self.encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
            outputs = {"mlm_logits": self.fit_model.masked_lm_head(encoded["sequence_output"], inputs["mask_positions"]),
                       "nsp_logits": nsp(encoded["pooled_output"])}
            self.pretrainer = keras.Model(inputs, outputs)
            self.classifier = keras_hub.models.BertTextClassifier(self.encoder, num_classes=2, preprocessor=None)
        _set_policy("float32")

    def inputs(self, x):
        x = dict(x)
        if self.package == "hub":
            x["mask_positions"] = x.pop("masked_positions")
        return x

    def encoder_inputs(self, x):
        return {k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")}


def pretraining_loss(y, outputs):
    import keras
    from keras import ops

    mlm = ops.cast(outputs["mlm_logits"], "float32")
    nsp = ops.cast(outputs["nsp_logits"], "float32")
    weights = y["mlm_weights"]
    mlm_loss = keras.losses.sparse_categorical_crossentropy(y["mlm_labels"], mlm, from_logits=True)
    mlm_loss = ops.sum(mlm_loss * weights) / ops.maximum(ops.sum(weights), 1e-5)
    nsp_loss = ops.mean(keras.losses.sparse_categorical_crossentropy(y["nsp_labels"], nsp, from_logits=True))
    return mlm_loss + nsp_loss


def _batch_timer_class():
    import keras

    class BatchTimer(keras.callbacks.Callback):
        """Times `fit`/`predict` from the end of their first batch to the end of their last.

        This leaves out the data iterator's set-up and teardown: TensorFlow's iterator teardown at the
        end of a `fit` call sometimes blocks for about 5 s (seen at every size, for both packages),
        which is not a cost of the step.
        """

        def on_train_batch_end(self, batch, logs=None):
            self._mark(batch)

        def on_predict_batch_end(self, batch, logs=None):
            self._mark(batch)

        def _mark(self, batch):
            now = time.perf_counter()
            if batch == 0:
                self.start = now
            self.end = now

        def seconds(self):
            return self.end - self.start

    return BatchTimer


def make_runner(variant, mode, xla, x, y, steps):
    """Returns (warmup(), run()) where run() performs `steps` iterations and blocks until done.

    `run()` returns the seconds its steps took when it times them itself (`fit`, `predict`: one extra
    batch first, timed out), or None for the caller to time the whole call.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    if mode == "step":
        model = variant.pretrainer
        optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01)
        optimizer.build(model.trainable_variables)
        xin = {k: tf.constant(v) for k, v in variant.inputs(x).items()}
        yin = {k: tf.constant(v) for k, v in y.items() if k != "class_labels"}

        @tf.function(jit_compile=xla)
        def train_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = pretraining_loss(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        def run(n=steps):
            for _ in range(n):
                loss = train_step(xin, yin)
            float(loss)  # blocks until the last step is done

        return (lambda: run(1)), run

    if mode == "infer":
        model = variant.encoder
        xin = {k: tf.constant(v) for k, v in variant.encoder_inputs(x).items()}

        @tf.function(jit_compile=xla)
        def infer(xb):
            out = model(xb, training=False)
            return out["sequence_output"], out["pooled_output"]

        def run(n=steps):
            for _ in range(n):
                out = infer(xin)
            float(tf.reduce_sum(tf.cast(out[1], "float32")))  # blocks until the last call is done

        return (lambda: run(1)), run

    BatchTimer = _batch_timer_class()
    if mode == "fit":
        # Each package's own `compile()` defaults, as a user gets them: ours AdamW with BERT's
        # exclusions (fused update on TensorFlow), keras-hub's `MaskedLM` Adam(5e-5) + its loss and metric.
        model = variant.fit_model
        model.compile(jit_compile=xla)
        if variant.package == "ours":
            data = (variant.inputs(x), {k: v for k, v in y.items() if k != "class_labels"})
        else:
            data = (variant.inputs(x), y["mlm_labels"], y["mlm_weights"])
        dataset = tf.data.Dataset.from_tensors(data).repeat()
        timer = BatchTimer()

        def run(n=steps):
            model.fit(dataset, steps_per_epoch=n + 1, epochs=1, verbose=0, callbacks=[timer])
            return timer.seconds()

        return (lambda: run(1)), run

    if mode == "predict":
        model = variant.classifier
        model.compile(jit_compile=xla) if variant.package == "hub" else model.compile(
            optimizer="adam", jit_compile=xla)
        batch = len(x["token_ids"])
        xin = {k: np.concatenate([v] * (steps + 1)) for k, v in variant.encoder_inputs(x).items()}
        timer = BatchTimer()

        def run(n=steps):
            model.predict({k: v[: (n + 1) * batch] for k, v in xin.items()}, batch_size=batch, verbose=0,
                          callbacks=[timer])
            return timer.seconds()

        return (lambda: run(1)), run
    raise ValueError(mode)


def time_alternating(runners, rounds):
    """Seconds of each runner's timed calls, `rounds` times, in an order reversed every round.

    `runners` maps a variant name to a `run()` from `make_runner` (or a peer's runner).
    """
    times = {name: [] for name in runners}
    for r in range(rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            seconds = runners[name]()
            times[name].append(seconds if seconds is not None else time.perf_counter() - start)
    return times


def result_row(config, name, preset, seq, batch, mode, xla, package, dtype, variant, times, steps, peak,
               compile_s):
    """One result row: the median over rounds of sequences/s, with tokens/s, GFLOP/s and share of `peak`."""
    seqs = [steps * batch / t for t in times]
    sps = statistics.median(seqs)
    gflops = sps * flops_per_sequence(config, seq, mode) / 1e9
    return dict(config=name, preset=preset, seq=seq, batch=batch, mode=mode, xla=xla, package=package,
                dtype=dtype, variant=variant, seq_per_s=sps, seq_per_s_rounds=seqs, tokens_per_s=sps * seq,
                gflops=gflops, peak_share=gflops / peak, compile_s=compile_s)


def print_row(row):
    print(f"[{row['config']}] {row['mode']:7s} xla={'on ' if row['xla'] else 'off'} {row['variant']:9s} "
          f"{row['seq_per_s']:8.2f} seq/s {row['gflops']:7.1f} GFLOP/s ({100 * row['peak_share']:4.1f}% of peak) "
          f"first call {row['compile_s']:.1f}s", flush=True)


def measure(runners, meta, rounds, config, name, preset, seq, batch, mode, steps, peaks):
    """Warms up each `(warmup, run)` of `runners`, times them alternately, prints and returns their rows.

    `meta` maps each runner's key to `(package, dtype, xla, variant name)`; `peaks` a dtype to GFLOP/s.
    """
    compile_s = {}
    for key, (warmup, _) in runners.items():
        start = time.perf_counter()
        warmup()
        compile_s[key] = time.perf_counter() - start
    times = time_alternating({key: run for key, (_, run) in runners.items()}, rounds)
    rows = []
    for key, (package, dtype, xla, variant) in meta.items():
        rows.append(result_row(config, name, preset, seq, batch, mode, xla, package, dtype, variant, times[key],
                               steps, peaks[dtype], compile_s[key]))
        print_row(rows[-1])
    return rows


def best_row(rows, **match):
    """The fastest row (most sequences/s) of those whose keys equal `match`; None if none does."""
    sel = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return max(sel, key=lambda r: r["seq_per_s"]) if sel else None


def print_table(rows):
    """Prints `rows` as a table, each of ours with its ratio over keras-hub's best row of the same dtype."""
    header = (f"{'config':9s} {'path':7s} {'xla':3s} {'variant':9s} {'seq/s':>8s} {'tok/s':>9s} "
              f"{'GFLOP/s':>8s} {'%peak':>6s} {'vs hub same dtype':>17s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        hub = best_row(rows, config=r["config"], mode=r["mode"], xla=r["xla"], package="hub", dtype=r["dtype"])
        ratio = f"{r['seq_per_s'] / hub['seq_per_s']:.2f}x" if hub and r["package"] == "ours" else ""
        print(f"{r['config']:9s} {r['mode']:7s} {'on' if r['xla'] else 'off':3s} {r['variant']:9s} "
              f"{r['seq_per_s']:8.2f} {r['tokens_per_s']:9.0f} {r['gflops']:8.1f} {100 * r['peak_share']:5.1f}% "
              f"{ratio:>17s}")


# --------------------------------------------------------------------------- optional peers

PEERS = {"hf": ("torch", "transformers"), "ort": ("torch", "transformers", "onnx", "onnxruntime")}
LABELS = {"hf": "Hugging Face transformers (PyTorch)", "ort": "ONNX Runtime"}


def missing_modules(peer):
    """The Python modules `peer` needs that are not installed (empty: it can run)."""
    return [m for m in PEERS[peer] if importlib.util.find_spec(m) is None]
