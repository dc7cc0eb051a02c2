"""Hugging Face `transformers` (PyTorch) and ONNX Runtime BERT, timed as `benchmarks.compare` times ours.

    python -m benchmarks.peers --config base-128 --out peers.json               # CPU
    python -m benchmarks.peers --config mini-128 --packages hf --device cuda    # a GPU

`benchmarks.compare` runs this module in its own process after each configuration's worker when
`torch` + `transformers` (Hugging Face) or those and `onnxruntime` + `onnx` (ONNX Runtime) are
installed; TensorFlow and PyTorch are not loaded into one process, so that neither starves the
other of threads. The model shapes, the random batch and the row format are `benchmarks.harness`'s, as in `compare`.

Peers and paths:
  hf    `transformers.BertForPreTraining` (`hidden_act="gelu_new"`, the default `sdpa` attention).
        step: AdamW over the same MLM (20 masked positions, gathered before the vocabulary projection
        with HF's own `cls.predictions` head) + NSP loss as `compare`'s step; infer: `model.bert(...)`
        under `torch.inference_mode`. bfloat16 is `torch.autocast`, as `mixed_bfloat16` is in Keras.
        The "xla" axis is `torch.compile` (off: eager).
  ort   The same `BertModel` (eager attention) exported with `torch.onnx.export` and run by an
        `InferenceSession` with all graph optimizations (its own online fusions): inference only,
        float32, checked against PyTorch's output first. Reported as xla=on (its own graph compiler).
        The offline `onnxruntime.transformers.optimizer` is not used: on transformers 5 exports it fused
        no attention, only SkipLayerNorm and FastGelu, and ran at the same speed (onnxruntime 1.32).
"""

import argparse
import json
import os
import tempfile

from benchmarks import harness
from benchmarks.harness import PEERS, missing_modules

# Our input names -> Hugging Face's.
HF_INPUT_NAMES = {"token_ids": "input_ids", "segment_ids": "token_type_ids", "padding_mask": "attention_mask"}
# A dtype whose PyTorch matmul runs slower than this here (bfloat16 without bfloat16 units) is not timed.
MIN_MATMUL_GFLOPS = 10


def hf_config(config):
    """Our `BertConfig` as a `transformers.BertConfig` of the same shape."""
    import transformers

    return transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act, hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_epsilon)


class HfVariant:
    """`BertForPreTraining` on one device, run in float32 or under bfloat16 autocast."""

    package = "hf"

    def __init__(self, dtype, config, device="cpu"):
        import torch
        import transformers

        torch.manual_seed(1)
        self.dtype, self.config, self.device = dtype, config, device
        self.name = f"hf-{'bf16' if dtype == 'bfloat16' else 'f32'}"
        self.model = transformers.BertForPreTraining(hf_config(config)).to(device)

    def tensors(self, x, y):
        import torch

        xin = {hf: torch.as_tensor(x[k], dtype=torch.long, device=self.device) for k, hf in HF_INPUT_NAMES.items()}
        positions = torch.as_tensor(x["masked_positions"], dtype=torch.long, device=self.device)
        yin = {k: torch.as_tensor(v, device=self.device) for k, v in y.items()}
        return xin, positions, yin

    def autocast(self):
        import torch

        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")

    def synchronize(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def hf_runner(variant, mode, compiled, x, y, steps):
    """`(warmup(), run())` like `harness.make_runner`; `run()` returns None (the caller times it)."""
    import torch
    import torch.nn.functional as F

    model = variant.model
    xin, positions, yin = variant.tensors(x, y)
    hidden = variant.config.hidden_size

    if mode == "step":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

        def loss_fn(xb, positions, yb):
            with variant.autocast():
                sequence_output, pooled_output = model.bert(**xb, return_dict=False)[:2]
                gathered = torch.gather(sequence_output, 1, positions[..., None].expand(-1, -1, hidden))
                mlm = model.cls.predictions(gathered).float()
                nsp = model.cls.seq_relationship(pooled_output).float()
            weights = yb["mlm_weights"].float()
            mlm_loss = F.cross_entropy(mlm.flatten(0, 1), yb["mlm_labels"].long().flatten(), reduction="none")
            mlm_loss = (mlm_loss * weights.flatten()).sum() / weights.sum().clamp(min=1e-5)
            return mlm_loss + F.cross_entropy(nsp, yb["nsp_labels"].long())

        loss_fn = torch.compile(loss_fn) if compiled else loss_fn

        def run(n=steps):
            for _ in range(n):
                loss = loss_fn(xin, positions, yin)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            loss.item()  # blocks until the last step is done

        return (lambda: run(1)), run

    if mode == "infer":
        model.eval()

        def infer(xb):
            with variant.autocast():
                return model.bert(**xb, return_dict=False)[:2]

        infer = torch.compile(infer) if compiled else infer

        def run(n=steps):
            with torch.inference_mode():
                for _ in range(n):
                    out = infer(xin)
                float(out[1].float().sum())  # blocks until the last call is done

        return (lambda: run(1)), run
    raise ValueError(f"peer 'hf' has no path {mode!r} (it runs step and infer)")


def hf_runners(variants, mode, compile_flags, x, y, steps):
    """`(runners, meta)` for `harness.measure`: each `HfVariant` eager ("off") and/or compiled ("on")."""
    runners, meta = {}, {}
    for variant in variants:
        for compiled in compile_flags:
            key = variant.name + ("-compiled" if compiled == "on" else "")
            runners[key] = hf_runner(variant, mode, compiled == "on", x, y, steps)
            meta[key] = ("hf", variant.dtype, compiled == "on", variant.name)
    return runners, meta


def ort_runner(config, x, steps, workdir):
    """`(warmup(), run())` of ONNX Runtime inference on the exported `BertModel`."""
    import numpy as np
    import onnxruntime
    import torch
    import transformers

    torch.manual_seed(1)
    # Eager attention exports the plain matmul-softmax pattern that ONNX Runtime's fusions know.
    hf = hf_config(config)
    hf._attn_implementation = "eager"
    model = transformers.BertModel(hf, add_pooling_layer=True).eval()
    feeds = {hf: np.asarray(x[k], dtype=np.int64) for k, hf in HF_INPUT_NAMES.items()}
    path = os.path.join(workdir, "bert.onnx")

    class Encoder(torch.nn.Module):  # positional inputs for the tracing exporter
        def __init__(self):
            super().__init__()
            self.bert = model

        def forward(self, input_ids, token_type_ids, attention_mask):
            return self.bert(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                             return_dict=False)[:2]

    with torch.inference_mode():
        torch.onnx.export(Encoder().eval(), tuple(torch.from_numpy(v) for v in feeds.values()), path,
                          input_names=list(feeds), output_names=["sequence_output", "pooled_output"],
                          opset_version=17, dynamo=False)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count()
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}, return_dict=False)[0].numpy()
    error = float(np.max(np.abs(session.run(None, feeds)[0] - expected)))
    print(f"[ort] max |ONNX Runtime - PyTorch| of the sequence output: {error:.2e}", flush=True)
    if error > 1e-3:
        raise RuntimeError(f"the ONNX model disagrees with PyTorch by {error:.2e}")

    def run(n=steps):
        for _ in range(n):
            session.run(None, feeds)

    return (lambda: run(1)), run


def torch_matmul_peak(device, dtypes, n=3072, reps=4):
    """Best GFLOP/s of an n x n x n `torch.matmul` per dtype on `device`.

    A dtype whose 512^3 probe runs under `MIN_MATMUL_GFLOPS` (bfloat16 on a CPU without bfloat16 units,
    where PyTorch falls back to a scalar loop) is measured at that size only.
    """
    import torch

    def wait(result):  # CUDA calls return before the GPU is done; CPU ones after
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def peak(dtype, size, reps):
        a = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
        b = torch.randn(size, size, device=device, dtype=getattr(torch, dtype))
        return 2 * size ** 3 / harness.best_matmul_seconds(torch.matmul, a, b, reps, wait=wait) / 1e9

    peaks = {}
    for dtype in dtypes:
        peaks[dtype] = peak(dtype, 512, 1)
        if peaks[dtype] >= MIN_MATMUL_GFLOPS:
            peaks[dtype] = peak(dtype, n, reps)
    return peaks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, choices=sorted(harness.CONFIGS))
    parser.add_argument("--packages", nargs="+", default=["hf", "ort"], choices=sorted(PEERS))
    parser.add_argument("--paths", nargs="+", default=["step", "infer"], choices=["step", "infer"])
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"],
                        help="torch.compile for the hf peer (compare's 'xla' axis)")
    parser.add_argument("--dtypes", nargs="+", default=list(harness.DTYPES), choices=list(harness.DTYPES))
    parser.add_argument("--device", default="cpu", help="torch device of the hf peer (ONNX Runtime: CPU)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed call")
    parser.add_argument("--infer-steps", type=int, default=5, help="inference calls per timed call")
    parser.add_argument("--out", required=True, help="write the rows here (compare's worker JSON format)")
    args = parser.parse_args(argv)
    # keras_bert (for the config) loads Keras: on the PyTorch backend, whatever the caller's environment
    # says, since TensorFlow and PyTorch in one process crash.
    os.environ["KERAS_BACKEND"] = "torch"
    if missing_modules("hf"):
        raise SystemExit(f"benchmarks.peers needs {', '.join(missing_modules('hf'))}: pip install -e '.[peers]'")
    import torch

    import keras_bert

    torch.set_num_threads(os.cpu_count())
    preset, seq, batch = harness.CONFIGS[args.config]
    config = keras_bert.BertConfig.from_preset(preset, hidden_act="gelu_new")
    x, y = harness.random_batch(config, seq, batch)
    peaks_before = torch_matmul_peak(args.device, args.dtypes)
    print(f"[{args.config}] torch matmul peak GFLOP/s: {peaks_before}", flush=True)
    results, skipped = [], {}
    for dtype in [d for d in args.dtypes if peaks_before[d] < MIN_MATMUL_GFLOPS]:
        skipped[f"hf-{dtype}"] = (f"skipped: torch's {dtype} matmul runs at {peaks_before[dtype]:.1f} GFLOP/s "
                                  f"on this {args.device} (no {dtype} units)")
        print(f"[{args.config}] {skipped[f'hf-{dtype}']}", flush=True)
    for peer in args.packages:
        if missing_modules(peer):
            skipped[peer] = f"skipped: {', '.join(missing_modules(peer))} not installed"
            print(f"[{args.config}] {peer}: {skipped[peer]}", flush=True)
    hf_variants = []
    if "hf" in args.packages and "hf" not in skipped:
        hf_variants = [HfVariant(d, config, args.device) for d in args.dtypes if f"hf-{d}" not in skipped]
    # Every runner of one path runs alternately with the others.
    for mode in args.paths:
        steps = args.steps if mode == "step" else args.infer_steps
        runners, meta = hf_runners(hf_variants, mode, args.compile, x, y, steps)
        if mode == "infer" and "ort" in args.packages and "ort" not in skipped and "float32" in args.dtypes:
            workdir = tempfile.mkdtemp(prefix="bert_ort_")
            runners["ort-f32"] = ort_runner(config, x, steps, workdir)
            meta["ort-f32"] = ("ort", "float32", True, "ort-f32")
        results += harness.measure(runners, meta, args.rounds, config, args.config, preset, seq, batch, mode, steps,
                                   peaks_before)
    out = dict(config=args.config, preset=preset, seq=seq, batch=batch, peaks_before=peaks_before,
               peaks_after=torch_matmul_peak(args.device, args.dtypes), results=results, skipped=skipped,
               torch=torch.__version__, device=args.device)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
