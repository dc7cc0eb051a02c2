"""ONNX Runtime dynamic int8 of the same fine-tuned classifier: the peer of `benchmarks.sst2_precision`.

Not a test. Two halves, in two Python environments:

1. `prepare(model_dir, texts, work_dir, batch_size)` runs in keras_bert's environment (called by
   `benchmarks.sst2_precision --ort-python ...`): it writes the model's encoder in the Hugging Face
   layout (`keras_bert.checkpoints.hf.to_hf`), its classifier weights, the ids of each batch as the
   export's own tokenizer and packer make them (each batch padded to its longest), and keras_bert's
   float32 logits on them.
2. `python -m benchmarks.ort_peer --work DIR` runs in a throwaway environment with PyTorch,
   transformers, onnx and onnxruntime (never keras_bert's; the CPU torch wheel is local):

       python3.11 -m venv /tmp/ortenv-int8
       /tmp/ortenv-int8/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \\
           transformers==4.57.6 onnx==1.23.1 onnxruntime==1.30.0 onnxscript==0.7.2

   The first call builds transformers' `BertForSequenceClassification` from those weights, exports
   it to ONNX, checks ONNX Runtime's float32 logits against keras_bert's (max abs difference; it
   stops above `--tolerance`), applies ONNX Runtime's BERT graph optimizer (fused attention,
   SkipLayerNorm, BiasGelu) and then `onnxruntime.quantization.quantize_dynamic` (int8 weights,
   uint8 activations quantized per tensor at run time). Every call then times the int8 session
   over the same batches (`--rounds` passes) and writes `DIR/ort_result.json`: sentences/s,
   probabilities, the float32 check.
"""

import argparse
import json
import os
import time

import numpy as np

IDS_FILE = "batches.npz"
RESULT_FILE = "ort_result.json"
HF_DIR = "hf"
ONNX_FLOAT = "model.onnx"
ONNX_INT8 = "model.int8.onnx"


def prepare(model_dir, texts, work_dir, batch_size):
    """Writes the HF-layout weights, the batches' ids and keras_bert's float32 logits into `work_dir`.

    Args:
        model_dir: str. A fine-tuned `BertClassifier` directory.
        texts: list of str. The sentences, in order.
        work_dir: str. Created if missing.
        batch_size: int. Sentences per batch (each padded to its longest, as the export pads).
    """
    import tensorflow as tf

    import keras_bert
    from keras_bert.checkpoints.hf import to_hf
    from keras_bert.export import ServingModule

    os.makedirs(work_dir, exist_ok=True)
    model = keras_bert.load(model_dir)
    settings = keras_bert.load_tokenizer_settings(model_dir, require_vocab=True)
    to_hf(model, os.path.join(work_dir, HF_DIR), vocab_file=settings["vocab_file"])
    module = ServingModule(model, "classification", settings["vocab_file"], lowercase=settings.get("lowercase", True))
    batches, logits = [], []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start:start + batch_size])
        packed = {k: v.numpy() for k, v in module.pack_texts({"text": batch}).items()}
        batches.append(packed)
        logits.append(np.asarray(model(packed, training=False)))
    longest = max(b["token_ids"].shape[1] for b in batches)
    arrays = {name: np.concatenate([np.pad(b[name], [[0, 0], [0, longest - b[name].shape[1]]]) for b in batches])
              for name in ("token_ids", "segment_ids", "padding_mask")}
    classifier = model.get_layer("logits")
    np.savez(os.path.join(work_dir, IDS_FILE), batch_lengths=np.array([b["token_ids"].shape[1] for b in batches]),
             batch_size=np.array(batch_size), keras_bert_logits=np.concatenate(logits),
             classifier_kernel=np.asarray(classifier.kernel), classifier_bias=np.asarray(classifier.bias), **arrays)
    return work_dir


def _batches(data):
    """The (token_ids, attention mask, token type ids) int64 batches, each cut to its own length."""
    size = int(data["batch_size"])
    for index, length in enumerate(data["batch_lengths"]):
        rows = slice(index * size, (index + 1) * size)
        yield {"input_ids": data["token_ids"][rows, :length].astype(np.int64),
               "attention_mask": data["padding_mask"][rows, :length].astype(np.int64),
               "token_type_ids": data["segment_ids"][rows, :length].astype(np.int64)}


def _convert(work_dir, data, tolerance):
    """Exports ONNX, checks float32 against keras_bert, optimizes and quantizes; returns the check."""
    import onnx
    import onnxruntime
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from safetensors.numpy import load_file

    config = transformers.BertConfig.from_pretrained(os.path.join(work_dir, HF_DIR), num_labels=2,
                                                     attn_implementation="eager")
    model = transformers.BertForSequenceClassification(config).eval()
    state = {k: torch.from_numpy(v) for k, v in load_file(os.path.join(work_dir, HF_DIR, "model.safetensors")).items()}
    missing, unexpected = model.bert.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"error: HF weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(data["classifier_kernel"].T.copy()))
        model.classifier.bias.copy_(torch.from_numpy(data["classifier_bias"]))
    example = next(_batches(data))
    names = ("input_ids", "attention_mask", "token_type_ids")
    torch.onnx.export(model, tuple(torch.from_numpy(example[n]) for n in names), os.path.join(work_dir, ONNX_FLOAT),
                      input_names=list(names), output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}})
    session = onnxruntime.InferenceSession(os.path.join(work_dir, ONNX_FLOAT), providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(["logits"], batch)[0] for batch in _batches(data)])
    difference = float(np.abs(logits - data["keras_bert_logits"]).max())
    if not difference <= tolerance:
        raise SystemExit(f"error: ONNX Runtime float32 logits differ from keras_bert's by {difference} "
                         f"(more than --tolerance {tolerance}); not quantizing")
    optimized = os.path.join(work_dir, "model.opt.onnx")
    optimize_model(os.path.join(work_dir, ONNX_FLOAT), model_type="bert", num_heads=config.num_attention_heads,
                   hidden_size=config.hidden_size).save_model_to_file(optimized)
    # The optimizer's fused ops (com.microsoft domain) defeat the quantizer's shape inference.
    quantize_dynamic(optimized, os.path.join(work_dir, ONNX_INT8), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"float32_max_abs_logit_difference": difference, "transformers": transformers.__version__,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="the directory `prepare` wrote")
    parser.add_argument("--rounds", type=int, default=1, help="timed passes over the batches")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest float32 logit difference accepted")
    args = parser.parse_args(argv)
    import onnxruntime

    data = dict(np.load(os.path.join(args.work, IDS_FILE)))
    check_file = os.path.join(args.work, "conversion.json")
    if not os.path.exists(os.path.join(args.work, ONNX_INT8)):
        with open(check_file, "w", encoding="utf-8") as f:
            json.dump(_convert(args.work, data, args.tolerance), f)
    with open(check_file, encoding="utf-8") as f:
        result = json.load(f)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    session = onnxruntime.InferenceSession(os.path.join(args.work, ONNX_INT8), options,
                                           providers=["CPUExecutionProvider"])
    batches = list(_batches(data))
    session.run(["logits"], batches[0])  # warm
    seconds = []
    for _ in range(args.rounds):
        logits, spent = [], 0.0
        for batch in batches:
            began = time.perf_counter()
            logits.append(session.run(["logits"], batch)[0])
            spent += time.perf_counter() - began
        seconds.append(spent)
    logits = np.concatenate(logits)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    result.update(seconds=seconds, examples=int(len(logits)),
                  probabilities=(shifted / shifted.sum(-1, keepdims=True)).tolist())
    with open(os.path.join(args.work, RESULT_FILE), "w", encoding="utf-8") as f:
        json.dump(result, f)
    print(f"ONNX Runtime int8: {len(logits) / float(np.median(seconds)):.1f} sentences/s")
    return result


if __name__ == "__main__":
    main()
