"""Hugging Face BERT checkpoints: `config.json` + `model.safetensors`, read and written with NumPy only.

Supports the `BertModel` layout (keys without prefix, encoder only) and the
`BertForPreTraining` layout (`bert.` prefix plus `cls.predictions.*` and
`cls.seq_relationship.*` heads). PyTorch is never needed.
"""

import json
import os
import shutil

import numpy as np

from keras_bert.checkpoints.assign import CheckpointMismatchError, assign, export, has_heads, is_non_weight
from keras_bert.checkpoints.common import build_model, check_vocab, find_file, read_json, vocab_is_cased
from keras_bert.checkpoints.layout import bert_rules, hf_namer
from keras_bert.config import BertConfig

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
# Tied copies that `transformers` may store; they must equal the weight they are tied to.
_TIED = {"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
         "cls.predictions.decoder.bias": "cls.predictions.bias"}


class _SafetensorsReader:
    """A lazy name -> NumPy array mapping over one or more safetensors files.

    Old `LayerNorm.gamma` / `LayerNorm.beta` key names are read as `.weight` / `.bias`.
    """

    def __init__(self, files):
        from safetensors import safe_open

        self._handles = {}
        self._where = {}
        for path in files:
            handle = safe_open(path, framework="numpy")
            self._handles[path] = handle
            for key in handle.keys():
                name = key
                if key.endswith(".gamma"):
                    name = key[: -len(".gamma")] + ".weight"
                elif key.endswith(".beta"):
                    name = key[: -len(".beta")] + ".bias"
                self._where[name] = (path, key)

    def keys(self):
        return list(self._where)

    def shape_of(self, name):
        path, key = self._where[name]
        return tuple(self._handles[path].get_slice(key).get_shape())

    def __getitem__(self, name):
        path, key = self._where[name]
        return self._handles[path].get_tensor(key)


def _weight_files(src):
    single = os.path.join(src, WEIGHTS_FILE)
    if os.path.isfile(single):
        return [single]
    index = os.path.join(src, WEIGHTS_INDEX_FILE)
    if os.path.isfile(index):
        shards = sorted(set(read_json(index)["weight_map"].values()))
        return [os.path.join(src, shard) for shard in shards]
    if os.path.isfile(os.path.join(src, "pytorch_model.bin")):
        raise FileNotFoundError(f"{src} holds pytorch_model.bin only; this importer reads safetensors "
                                f"(convert it with transformers: `save_pretrained(..., safe_serialization=True)`)")
    raise FileNotFoundError(f"{src}: {WEIGHTS_FILE} is missing")


def hf_lowercase(src, vocab_file):
    """Tokenizer casing of a Hugging Face folder: `tokenizer_config.json`, else guessed from the vocab.

    Args:
        src: str. The model folder.
        vocab_file: str or None. Its vocabulary.
    """
    path = find_file(src, ("tokenizer_config.json",))
    if path is not None:
        value = read_json(path).get("do_lower_case")
        if value is not None:
            return bool(value)
    if vocab_file is not None:
        return not vocab_is_cased(vocab_file)
    return True


def import_hf(src, vocab_file=None, lowercase=None, heads="auto"):
    """Reads a Hugging Face BERT folder; returns `(model, vocab_file, lowercase)`.

    Args:
        src: str. Folder holding `config.json` and `model.safetensors`.
        vocab_file: str or None. Overrides the folder's `vocab.txt`.
        lowercase: bool or None. Tokenizer casing; None reads `tokenizer_config.json`.
        heads: "auto", True or False. Load the `cls.*` pretraining heads: "auto"
            when the checkpoint has any; False ignores them.
    """
    src = os.fspath(src)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"{src} is not a folder (expected config.json + {WEIGHTS_FILE})")
    config_path = find_file(src, ("config.json",))
    if config_path is None:
        raise FileNotFoundError(f"{src}: config.json is missing")
    vocab_file = vocab_file or find_file(src, ("vocab.txt",))
    if lowercase is None:
        lowercase = hf_lowercase(src, vocab_file)
    config = BertConfig.from_hf_dict(read_json(config_path)).replace(lowercase=bool(lowercase))
    check_vocab(vocab_file, config)
    reader = _SafetensorsReader(_weight_files(src))
    names = reader.keys()
    prefix = "bert." if any(n.startswith("bert.") for n in names) else ""
    if heads == "auto":
        heads = any(n.startswith("cls.") for n in names)
    _check_tied(reader, prefix)
    rules = bert_rules(config, heads, hf_namer(prefix), kernels_out_in=True)

    def skip(name):
        return is_non_weight(name) or name in _TIED or (not heads and name.startswith("cls."))

    model = build_model(config, heads)
    hint = ("Pass heads=False (CLI: --no-heads) to load the encoder only, without the pretraining heads."
            if heads else None)
    assign(model, reader, rules, hint=hint, what=f"Hugging Face checkpoint {src}", skip=skip)
    return model, vocab_file, lowercase


def _check_tied(reader, prefix):
    names = set(reader.keys())
    for copy, original in _TIED.items():
        original = original if original.startswith("cls.") else prefix + original
        if copy in names and original in names:
            a, b = reader[copy], reader[original]
            if a.shape != b.shape or not np.array_equal(a, b):
                raise CheckpointMismatchError(
                    "Hugging Face checkpoint", unknown=[f"{copy} (not tied to {original}; keras_bert ties them)"])


def from_hf(src, vocab_file=None, lowercase=None, heads="auto"):
    """Loads a Hugging Face BERT folder as a `BertPretrainer` (with `cls.*` heads) or `BertEncoder`.

    Args:
        src: str. Folder holding `config.json` and `model.safetensors` (and
            optionally `vocab.txt`, `tokenizer_config.json`).
        vocab_file: str or None. Vocabulary when not in the folder.
        lowercase: bool or None. Tokenizer casing; None reads `tokenizer_config.json`.
        heads: "auto", True or False. Whether to load the pretraining heads.

    Returns:
        `BertPretrainer` or `BertEncoder`.
    """
    return import_hf(src, vocab_file=vocab_file, lowercase=lowercase, heads=heads)[0]


def hf_arrays(model):
    """The model's weights as a Hugging Face state dict of NumPy arrays.

    Args:
        model: `BertEncoder` (`BertModel` keys) or `BertPretrainer`
            (`BertForPreTraining` keys).
    """
    heads = has_heads(model)
    encoder = model.encoder if heads else model
    return export(model, bert_rules(encoder.config, heads, hf_namer("bert." if heads else ""), kernels_out_in=True))


def to_hf(model, out_dir, vocab_file=None, lowercase=None):
    """Writes a model in the Hugging Face layout, loadable by `transformers`.

    Writes `config.json` and `model.safetensors` (`BertForPreTraining` keys for
    a pretrainer, `BertModel` keys for an encoder or task model's encoder), plus
    `vocab.txt` and `tokenizer_config.json` when a vocabulary is given.

    Args:
        model: `BertEncoder`, `BertPretrainer`, or a task model (its encoder is written).
        out_dir: str. Created if missing.
        vocab_file: str or None. Vocabulary copied to `vocab.txt`.
        lowercase: bool or None. Tokenizer casing; None uses `config.lowercase`.

    Returns:
        The output folder.
    """
    from safetensors.numpy import save_file

    from keras_bert.models import BertEncoder

    heads = has_heads(model)
    if not heads and not isinstance(model, BertEncoder):
        model = model.encoder
    encoder = model.encoder if heads else model
    config = encoder.config
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    arrays = {k: v.astype(np.float32) for k, v in hf_arrays(model).items()}
    save_file(arrays, os.path.join(out_dir, WEIGHTS_FILE), metadata={"format": "pt"})
    hf_config = config.to_hf_dict()
    hf_config["architectures"] = ["BertForPreTraining" if heads else "BertModel"]
    hf_config["torch_dtype"] = "float32"
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config, f, indent=2, sort_keys=True)
        f.write("\n")
    if vocab_file is not None:
        target = os.path.join(out_dir, "vocab.txt")
        if os.path.abspath(vocab_file) != os.path.abspath(target):
            shutil.copyfile(vocab_file, target)
        do_lower = config.lowercase if lowercase is None else bool(lowercase)
        tokenizer_config = {"do_lower_case": do_lower, "strip_accents": None, "tokenizer_class": "BertTokenizer",
                            "model_max_length": config.max_position_embeddings, "unk_token": "[UNK]",
                            "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                            "mask_token": "[MASK]"}
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_config, f, indent=2, sort_keys=True)
            f.write("\n")
    return out_dir
