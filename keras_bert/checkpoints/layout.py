"""The original BERT weight layout (Google TF1 names), shared by the TF1 and Hugging Face importers.

Google's TF1 checkpoints and Hugging Face's `BertForPreTraining` hold the same
tensors under names that translate one to one; they differ in the layout of
dense kernels (TF1 `[in, out]`, PyTorch `[out, in]`). `bert_rules` writes the
rules for either, given a function that turns a TF1 name into the source's name.
"""

import numpy as np

from keras_bert.checkpoints.assign import Rule, identity, transpose


def _qkv_rules(target, names, shapes, t):
    def fn(q, k, v):
        return np.concatenate([t(q), t(k), t(v)], axis=-1)

    def inverse(value):
        return [t(part) for part in np.split(value, 3, axis=-1)]

    return Rule(target, names, shapes, fn, inverse)


def bert_rules(config, heads, name, kernels_out_in):
    """Rules mapping BERT's original weights onto a keras_bert model.

    Args:
        config: `BertConfig`. The model's shape.
        heads: bool. Include the MLM (`cls/predictions/*`) and NSP
            (`cls/seq_relationship/*`) heads.
        name: callable(str) -> str. A TF1 variable name -> the source's name.
        kernels_out_in: bool. Dense kernels are stored `[out, in]` (PyTorch)
            rather than `[in, out]` (TF1).

    Returns:
        list of `Rule`.
    """
    if config.pre_layer_norm:
        raise ValueError("The original BERT layout is post-LayerNorm; a pre-LN model has no equivalent")
    if not config.has_standard_heads:
        raise ValueError(f"The original BERT layout has {config.num_heads} heads of hidden_size / num_heads; this "
                         f"model's are {config.attention_head_size} wide (pruned heads have no equivalent)")
    h, inner = config.hidden_size, config.intermediate_size
    t = transpose if kernels_out_in else identity

    def kshape(n_in, n_out):
        return (n_out, n_in) if kernels_out_in else (n_in, n_out)

    rules = []

    def dense(target, source, n_in, n_out):
        rules.append(Rule(f"{target}/kernel", [name(f"{source}/kernel")], [kshape(n_in, n_out)], t))
        rules.append(Rule(f"{target}/bias", [name(f"{source}/bias")], [(n_out,)]))

    def norm(target, source):
        rules.append(Rule(f"{target}/gamma", [name(f"{source}/gamma")], [(h,)]))
        rules.append(Rule(f"{target}/beta", [name(f"{source}/beta")], [(h,)]))

    rules.append(Rule("embeddings/token", [name("bert/embeddings/word_embeddings")], [(config.vocab_size, h)]))
    rules.append(Rule("embeddings/segment", [name("bert/embeddings/token_type_embeddings")],
                      [(config.type_vocab_size, h)]))
    rules.append(Rule("embeddings/position", [name("bert/embeddings/position_embeddings")],
                      [(config.max_position_embeddings, h)]))
    norm("embeddings/layer_norm", "bert/embeddings/LayerNorm")
    for i in range(config.num_layers):
        src = f"bert/encoder/layer_{i}"
        parts = ("query", "key", "value")
        rules.append(_qkv_rules(f"layer_{i}/attention/qkv/kernel",
                                [name(f"{src}/attention/self/{p}/kernel") for p in parts],
                                [kshape(h, h)] * 3, t))
        rules.append(_qkv_rules(f"layer_{i}/attention/qkv/bias",
                                [name(f"{src}/attention/self/{p}/bias") for p in parts], [(h,)] * 3, identity))
        dense(f"layer_{i}/attention/output", f"{src}/attention/output/dense", h, h)
        norm(f"layer_{i}/attention_layer_norm", f"{src}/attention/output/LayerNorm")
        dense(f"layer_{i}/intermediate", f"{src}/intermediate/dense", h, inner)
        dense(f"layer_{i}/ffn_output", f"{src}/output/dense", inner, h)
        norm(f"layer_{i}/ffn_layer_norm", f"{src}/output/LayerNorm")
    dense("pooler", "bert/pooler/dense", h, h)
    if heads:
        dense("mlm/transform", "cls/predictions/transform/dense", h, h)
        norm("mlm/layer_norm", "cls/predictions/transform/LayerNorm")
        rules.append(Rule("mlm/output_bias", [name("cls/predictions/output_bias")], [(config.vocab_size,)]))
        # NSP weights are `[2, hidden]` in both TF1 (`output_weights`) and PyTorch.
        rules.append(Rule("nsp/kernel", [name("cls/seq_relationship/output_weights")], [(2, h)], transpose))
        rules.append(Rule("nsp/bias", [name("cls/seq_relationship/output_bias")], [(2,)]))
    return rules


def tf1_name(name):
    """The TF1 name itself (Google's checkpoints).

    Args:
        name: str. A TF1 variable name.
    """
    return name


_HF_SPECIAL = {
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
}


def hf_namer(prefix):
    """Returns a function turning a TF1 name into a Hugging Face key.

    Args:
        prefix: str. Prefix of the encoder's keys: `"bert."` (`BertForPreTraining`)
            or `""` (`BertModel`).
    """

    def name(tf1):
        if tf1 in _HF_SPECIAL:
            return _HF_SPECIAL[tf1]
        parts = tf1.split("/")
        head = prefix if parts[0] == "bert" else parts[0] + "."
        rest = []
        for part in parts[1:]:
            if part.startswith("layer_") and part[6:].isdigit():
                rest.extend(["layer", part[6:]])
            elif part in ("kernel", "gamma"):
                rest.append("weight")
            elif part == "beta":
                rest.append("bias")
            else:
                rest.append(part)
        if parts[-1].endswith("_embeddings"):
            rest.append("weight")
        return head + ".".join(rest)

    return name
