"""keras-hub interop: copy weights between `keras_hub.models.BertBackbone` and `BertEncoder`.

keras-hub's BERT is post-LN with the tanh GELU and LayerNorm epsilon 1e-12; its
attention projections are `EinsumDense` kernels `[hidden, heads, head_size]`.
"""

import os

import numpy as np

from keras_bert.checkpoints.assign import Rule, assign, export, identity
from keras_bert.checkpoints.common import build_model, find_file, read_json, vocab_is_cased
from keras_bert.config import TANH_GELU, BertConfig


def backbone_config(backbone, lowercase=True):
    """The `BertConfig` of a `keras_hub.models.BertBackbone`.

    Args:
        backbone: `keras_hub.models.BertBackbone`.
        lowercase: bool. Tokenizer casing (the backbone does not know it).
    """
    return BertConfig(
        vocab_size=backbone.vocabulary_size, hidden_size=backbone.hidden_dim, num_layers=backbone.num_layers,
        num_heads=backbone.num_heads, intermediate_size=backbone.intermediate_dim, hidden_act="gelu_new",
        hidden_dropout=backbone.dropout, attention_dropout=backbone.dropout,
        max_position_embeddings=backbone.max_sequence_length, type_vocab_size=backbone.num_segments,
        layer_norm_epsilon=1e-12, pre_layer_norm=False, lowercase=lowercase)


def keras_hub_rules(config):
    """Rules mapping `BertBackbone` weight paths onto a `BertEncoder`.

    Args:
        config: `BertConfig`. The encoder's shape.
    """
    if not config.has_standard_heads:
        raise ValueError(f"keras-hub's BertBackbone has heads of hidden_size / num_heads; this model's are "
                         f"{config.attention_head_size} wide (pruned heads have no equivalent)")
    h, n = config.hidden_size, config.num_heads
    d = h // n
    rules = []

    def norm(target, source):
        rules.append(Rule(f"{target}/gamma", [f"{source}/gamma"], [(h,)]))
        rules.append(Rule(f"{target}/beta", [f"{source}/beta"], [(h,)]))

    def dense(target, source, n_in, n_out):
        rules.append(Rule(f"{target}/kernel", [f"{source}/kernel"], [(n_in, n_out)]))
        rules.append(Rule(f"{target}/bias", [f"{source}/bias"], [(n_out,)]))

    def qkv_kernel(q, k, v):
        return np.concatenate([x.reshape(h, h) for x in (q, k, v)], axis=-1)

    def qkv_bias(q, k, v):
        return np.concatenate([x.reshape(h) for x in (q, k, v)], axis=-1)

    rules.append(Rule("embeddings/token", ["token_embedding/embeddings"], [(config.vocab_size, h)]))
    rules.append(Rule("embeddings/segment", ["segment_embedding/embeddings"], [(config.type_vocab_size, h)]))
    rules.append(Rule("embeddings/position", ["position_embedding/embeddings"],
                      [(config.max_position_embeddings, h)]))
    norm("embeddings/layer_norm", "embeddings_layer_norm")
    for i in range(config.num_layers):
        src = f"transformer_layer_{i}"
        att = f"{src}/self_attention_layer"
        rules.append(Rule(f"layer_{i}/attention/qkv/kernel", [f"{att}/{p}/kernel" for p in ("query", "key", "value")],
                          [(h, n, d)] * 3, qkv_kernel,
                          lambda value: [x.reshape(h, n, d) for x in np.split(value, 3, axis=-1)]))
        rules.append(Rule(f"layer_{i}/attention/qkv/bias", [f"{att}/{p}/bias" for p in ("query", "key", "value")],
                          [(n, d)] * 3, qkv_bias,
                          lambda value: [x.reshape(n, d) for x in np.split(value, 3, axis=-1)]))
        rules.append(Rule(f"layer_{i}/attention/output/kernel", [f"{att}/attention_output/kernel"], [(n, d, h)],
                          lambda x: x.reshape(h, h), lambda value: [value.reshape(n, d, h)]))
        rules.append(Rule(f"layer_{i}/attention/output/bias", [f"{att}/attention_output/bias"], [(h,)], identity))
        norm(f"layer_{i}/attention_layer_norm", f"{src}/self_attention_layer_norm")
        dense(f"layer_{i}/intermediate", f"{src}/feedforward_intermediate_dense", h, config.intermediate_size)
        dense(f"layer_{i}/ffn_output", f"{src}/feedforward_output_dense", config.intermediate_size, h)
        norm(f"layer_{i}/ffn_layer_norm", f"{src}/feedforward_layer_norm")
    dense("pooler", "pooled_dense", h, h)
    return rules


def _backbone_arrays(backbone):
    return {w.path: np.asarray(w.numpy()) for w in backbone.weights}


def from_keras_hub(backbone, lowercase=True):
    """Builds a `BertEncoder` holding the weights of a `keras_hub.models.BertBackbone`.

    Args:
        backbone: `keras_hub.models.BertBackbone`, or a keras-hub preset folder/name.
        lowercase: bool. Tokenizer casing recorded in the config.

    Returns:
        `BertEncoder` whose outputs match the backbone's.
    """
    if isinstance(backbone, (str, os.PathLike)):
        return import_keras_hub(backbone)[0]
    config = backbone_config(backbone, lowercase=lowercase)
    encoder = build_model(config, heads=False)
    assign(encoder, _backbone_arrays(backbone), keras_hub_rules(config), what=f"keras-hub backbone {backbone.name}")
    return encoder


def to_keras_hub(encoder, strict=True):
    """Builds a `keras_hub.models.BertBackbone` holding a `BertEncoder`'s weights.

    Args:
        encoder: `BertEncoder` (or a model with an `.encoder`).
        strict: bool. Refuse configs keras-hub computes differently (exact
            GELU, LayerNorm epsilon other than 1e-12); with False they are
            converted anyway and outputs will differ slightly.

    Returns:
        `keras_hub.models.BertBackbone`.
    """
    import keras_hub

    from keras_bert.models import BertEncoder

    if not isinstance(encoder, BertEncoder):
        encoder = encoder.encoder
    config = encoder.config
    if config.pre_layer_norm:
        raise ValueError("keras-hub's BertBackbone is post-LN; a pre-LN encoder cannot be exported to it")
    problems = []
    if config.hidden_act not in TANH_GELU:
        problems.append(f"hidden_act={config.hidden_act!r} (keras-hub uses the tanh GELU)")
    if config.layer_norm_epsilon != 1e-12:
        problems.append(f"layer_norm_epsilon={config.layer_norm_epsilon} (keras-hub uses 1e-12)")
    if problems and strict:
        raise ValueError("keras-hub's BertBackbone cannot reproduce this encoder: " + "; ".join(problems)
                         + ". Pass strict=False to convert anyway.")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_size, intermediate_dim=config.intermediate_size, dropout=config.hidden_dropout,
        max_sequence_length=config.max_position_embeddings, num_segments=config.type_vocab_size)
    arrays = export(encoder, keras_hub_rules(config))
    variables = {w.path: w for w in backbone.weights}
    if set(arrays) != set(variables):
        raise RuntimeError(f"keras-hub BertBackbone weights changed: "
                           f"unexpected {sorted(set(variables) - set(arrays))}, "
                           f"absent {sorted(set(arrays) - set(variables))}")
    for path, value in arrays.items():
        variables[path].assign(value)
    return backbone


def import_keras_hub(src, vocab_file=None, lowercase=None):
    """Reads a keras-hub preset folder; returns `(encoder, vocab_file, lowercase)`.

    Args:
        src: str. A preset folder saved by keras-hub (`backbone.save_to_preset`),
            or a preset handle keras-hub can resolve.
        vocab_file: str or None. Overrides the preset's vocabulary.
        lowercase: bool or None. Tokenizer casing; None reads the preset's tokenizer config.
    """
    import keras_hub

    src = os.fspath(src)
    backbone = keras_hub.models.BertBackbone.from_preset(src)
    if os.path.isdir(src):
        vocab_file = vocab_file or find_file(os.path.join(src, "assets", "tokenizer"), ("vocabulary.txt", "vocab.txt"))
        if lowercase is None:
            tokenizer_json = find_file(src, ("tokenizer.json",))
            if tokenizer_json is not None:
                value = read_json(tokenizer_json).get("config", {}).get("lowercase")
                lowercase = None if value is None else bool(value)
    if lowercase is None:
        lowercase = not vocab_is_cased(vocab_file) if vocab_file else True
    return from_keras_hub(backbone, lowercase=lowercase), vocab_file, lowercase
