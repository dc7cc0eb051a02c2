"""Import of Google's original TF1 BERT checkpoints (`bert_model.ckpt` + `bert_config.json` + `vocab.txt`).

Variables are read by name with `tf.train.load_checkpoint`; no TF1 graph code runs.
"""

import glob
import os

from keras_bert.checkpoints.assign import assign
from keras_bert.checkpoints.common import build_model, check_vocab, find_file, read_json, vocab_is_cased
from keras_bert.checkpoints.layout import bert_rules, tf1_name
from keras_bert.config import BertConfig


class _Reader:
    """A lazy name -> array mapping over a TF checkpoint."""

    def __init__(self, prefix):
        import tensorflow as tf

        self._reader = tf.train.load_checkpoint(prefix)
        self._shapes = self._reader.get_variable_to_shape_map()

    def keys(self):
        return list(self._shapes)

    def shape_of(self, name):
        return self._shapes[name]

    def __getitem__(self, name):
        return self._reader.get_tensor(name)


def resolve_tf1(src):
    """Finds the checkpoint prefix, `bert_config.json` and `vocab.txt` of a TF1 source.

    Args:
        src: str. A folder holding `bert_model.ckpt.*` (or one other checkpoint),
            `bert_config.json` and `vocab.txt`; or a checkpoint prefix.

    Returns:
        tuple (prefix, config_path, vocab_path or None).
    """
    src = os.fspath(src)
    if os.path.isdir(src):
        folder = src
        if os.path.exists(os.path.join(src, "bert_model.ckpt.index")):
            prefix = os.path.join(src, "bert_model.ckpt")
        else:
            import tensorflow as tf

            prefix = tf.train.latest_checkpoint(src)
            if prefix is None:
                indexes = sorted(glob.glob(os.path.join(src, "*.index")))
                if len(indexes) != 1:
                    raise FileNotFoundError(
                        f"{src}: expected bert_model.ckpt.index or exactly one *.index checkpoint, "
                        f"found {[os.path.basename(i) for i in indexes]}")
                prefix = indexes[0][: -len(".index")]
    else:
        prefix = src[: -len(".index")] if src.endswith(".index") else src
        if not os.path.exists(prefix + ".index"):
            raise FileNotFoundError(f"No TF1 checkpoint at {src} (no {prefix}.index)")
        folder = os.path.dirname(prefix) or "."
    config_path = find_file(folder, ("bert_config.json", "config.json"))
    if config_path is None:
        raise FileNotFoundError(f"{folder}: bert_config.json is missing")
    return prefix, config_path, find_file(folder, ("vocab.txt",))


def tf1_config(config_dict, lowercase=True):
    """`BertConfig` from a Google `bert_config.json` dict; `"gelu"` there means the tanh form.

    Args:
        config_dict: dict. The parsed `bert_config.json`.
        lowercase: bool. Tokenizer casing.
    """
    values = dict(config_dict)
    # Google's modeling.py computes GELU with tanh although the config says "gelu".
    if values.get("hidden_act", "gelu") == "gelu":
        values["hidden_act"] = "gelu_new"
    return BertConfig.from_hf_dict(values).replace(lowercase=lowercase)


def import_tf1(src, vocab_file=None, lowercase=None, heads="auto"):
    """Reads a TF1 checkpoint; returns `(model, vocab_file, lowercase)`.

    Args:
        src: str. Checkpoint folder or prefix (see `resolve_tf1`).
        vocab_file: str or None. Overrides the `vocab.txt` found beside the checkpoint.
        lowercase: bool or None. Tokenizer casing; None guesses it from the vocabulary
            (uncased when no vocabulary is known).
        heads: "auto", True or False. Load the MLM/NSP heads: "auto" when the
            checkpoint has `cls/*` variables; False ignores them.
    """
    prefix, config_path, found_vocab = resolve_tf1(src)
    vocab_file = vocab_file or found_vocab
    if lowercase is None:
        lowercase = not vocab_is_cased(vocab_file) if vocab_file else True
    config = tf1_config(read_json(config_path), lowercase=lowercase)
    check_vocab(vocab_file, config)
    reader = _Reader(prefix)
    if heads == "auto":
        heads = any(name.startswith("cls/") for name in reader.keys())
    rules = bert_rules(config, heads, tf1_name, kernels_out_in=False)

    def skip(name):
        from keras_bert.checkpoints.assign import is_non_weight

        return is_non_weight(name) or (not heads and name.startswith("cls/"))

    model = build_model(config, heads)
    hint = ("Pass heads=False (CLI: --no-heads) to load the encoder only, without the pretraining heads."
            if heads else None)
    assign(model, reader, rules, hint=hint, what=f"TF1 checkpoint {prefix}", skip=skip)
    return model, vocab_file, lowercase


def from_tf1(src, vocab_file=None, lowercase=None, heads="auto"):
    """Loads a Google TF1 BERT checkpoint as a `BertPretrainer` (with `cls/*` heads) or `BertEncoder`.

    Args:
        src: str. Folder holding `bert_model.ckpt.*`, `bert_config.json` and
            `vocab.txt`, or a checkpoint prefix.
        vocab_file: str or None. Vocabulary, when not beside the checkpoint
            (used here to decide the casing).
        lowercase: bool or None. Tokenizer casing; None guesses from the vocabulary.
        heads: "auto", True or False. Whether to load the pretraining heads.

    Returns:
        `BertPretrainer` or `BertEncoder`.
    """
    return import_tf1(src, vocab_file=vocab_file, lowercase=lowercase, heads=heads)[0]
