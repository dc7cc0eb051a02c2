"""Assigns a dict of named NumPy arrays to a keras_bert model: all or nothing.

Every importer (TF1, Hugging Face, keras-hub) describes how its source names map
onto the model as a list of `Rule`s and calls `assign`; this module is the one
place that checks names and shapes and writes the variables.

A rule says: the model variable `target` is made from the source arrays
`sources` (each with the shape the source format must have), combined by `fn`.
`assign` first checks everything — source names that no rule uses and that are
not skippable ("unknown"), names a rule needs that the source lacks ("missing"),
arrays whose shape differs from what the rule expects ("mis-shaped") — and
raises one `CheckpointMismatchError` listing all of them. Only when there is
nothing to report does it assign, so a model is never left half loaded.
"""

import dataclasses
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

# Source entries that are not weights: optimizer slots and step counters.
_NON_WEIGHT_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/Momentum", "/accumulator",
                        "/ExponentialMovingAverage")
_NON_WEIGHT_NAMES = ("global_step", "beta1_power", "beta2_power", "good_steps", "current_loss_scale",
                     "embeddings.position_ids", "bert.embeddings.position_ids", "position_ids")


def is_non_weight(name):
    """Whether a source entry is an optimizer slot, step counter or buffer, not a weight.

    Args:
        name: str. The entry's name in the source checkpoint.
    """
    return (name in _NON_WEIGHT_NAMES or name.endswith(_NON_WEIGHT_SUFFIXES)
            or name.endswith(".position_ids") or name.endswith("/global_step"))


class CheckpointMismatchError(ValueError):
    """The source's names or shapes do not match the model; nothing was loaded.

    Attributes: `unknown`, `missing` (lists of names) and `mis_shaped` (list of
    `(name, expected_shape, actual_shape)`).
    """

    def __init__(self, what, unknown=(), missing=(), mis_shaped=(), hint=None):
        self.unknown = list(unknown)
        self.missing = list(missing)
        self.mis_shaped = list(mis_shaped)
        lines = [f"{what} does not match the model; nothing was loaded."]
        if self.unknown:
            lines.append(f"Unknown entries ({len(self.unknown)}): " + ", ".join(self.unknown))
        if self.missing:
            lines.append(f"Missing entries ({len(self.missing)}): " + ", ".join(self.missing))
        if self.mis_shaped:
            lines.append(f"Mis-shaped entries ({len(self.mis_shaped)}): " + ", ".join(
                f"{name} expected {tuple(expected)} got {tuple(actual)}"
                for name, expected, actual in self.mis_shaped))
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


def identity(x):
    return x


def transpose(x):
    return np.transpose(x)


@dataclasses.dataclass
class Rule:
    """How one model variable is made from source arrays.

    Args:
        target: str. Name of the model variable (see `model_variables`).
        sources: sequence of str. Source entry names `fn` takes, in order.
        shapes: sequence of tuple. The shape each source entry must have.
        fn: callable. Combines the source arrays into the variable's value.
        inverse: callable or None. The variable's value -> the list of source
            arrays (for export); None means `fn` is its own inverse on one source.
    """

    target: str
    sources: Sequence[str]
    shapes: Sequence[Tuple[int, ...]]
    fn: Callable = identity
    inverse: Optional[Callable] = None

    def __post_init__(self):
        self.sources = tuple(self.sources)
        self.shapes = tuple(tuple(int(d) for d in s) for s in self.shapes)
        if len(self.sources) != len(self.shapes):
            raise ValueError(f"Rule {self.target}: {len(self.sources)} sources but {len(self.shapes)} shapes")


def model_variables(model):
    """The model's variables by their format-neutral names, e.g. `layer_0/attention/qkv/kernel`.

    Args:
        model: a `BertEncoder`, a `BertPretrainer`, or a model with an `.encoder`.

    Returns:
        dict mapping name -> `keras.Variable`; heads only when the model has them.
    """
    from keras_bert.models import BertEncoder

    encoder = model if isinstance(model, BertEncoder) else model.encoder
    names = {}

    def dense(prefix, layer):
        names[f"{prefix}/kernel"] = layer.kernel
        names[f"{prefix}/bias"] = layer.bias

    def norm(prefix, layer):
        names[f"{prefix}/gamma"] = layer.gamma
        names[f"{prefix}/beta"] = layer.beta

    emb = encoder.embeddings
    names["embeddings/token"] = emb.token_embedding.embeddings
    names["embeddings/segment"] = emb.segment_embedding.embeddings
    names["embeddings/position"] = emb.position_embeddings
    norm("embeddings/layer_norm", emb.layer_norm)
    for i, block in enumerate(encoder.transformer_blocks):
        dense(f"layer_{i}/attention/qkv", block.attention.qkv)
        dense(f"layer_{i}/attention/output", block.attention.output_dense)
        norm(f"layer_{i}/attention_layer_norm", block.attention_layer_norm)
        dense(f"layer_{i}/intermediate", block.intermediate)
        dense(f"layer_{i}/ffn_output", block.ffn_output)
        norm(f"layer_{i}/ffn_layer_norm", block.ffn_layer_norm)
    if encoder.final_layer_norm is not None:
        norm("final_layer_norm", encoder.final_layer_norm)
    dense("pooler", encoder.pooler.dense)
    mlm_head = getattr(model, "mlm_head", None)
    if mlm_head is not None:
        dense("mlm/transform", mlm_head.transform)
        norm("mlm/layer_norm", mlm_head.layer_norm)
        names["mlm/output_bias"] = mlm_head.output_bias
        if mlm_head.token_embedding is None:
            names["mlm/output_embeddings"] = mlm_head.output_embeddings
    nsp_head = getattr(model, "nsp_head", None)
    if nsp_head is not None:
        dense("nsp", nsp_head.dense)
    return names


def has_heads(model):
    """Whether the model carries the MLM and NSP pretraining heads.

    Args:
        model: a keras_bert model.
    """
    return getattr(model, "mlm_head", None) is not None and getattr(model, "nsp_head", None) is not None


def assign(model, arrays, rules, what="checkpoint", skip=is_non_weight, hint=None):
    """Checks every source entry against `rules`, then assigns all variables, or raises and assigns none.

    Args:
        model: the keras_bert model to fill.
        arrays: mapping of source name -> array (NumPy or array-like; read lazily
            through `arrays[name]`, so a lazy mapping works too).
        rules: list of `Rule`, one per model variable.
        what: str. How the source is named in error messages.
        skip: callable(str) -> bool. Source entries to ignore (non-weights).
        hint: str or None. A line added to the error message.

    Returns:
        The model.

    Raises:
        CheckpointMismatchError: unknown, missing or mis-shaped entries (all listed).
    """
    variables = model_variables(model)
    targets = [rule.target for rule in rules]
    uncovered = sorted(set(variables) - set(targets))
    extra_targets = sorted(set(targets) - set(variables))
    if uncovered or extra_targets or len(set(targets)) != len(targets):
        # A bug in an importer, not in the user's checkpoint.
        raise RuntimeError(f"Importer rules do not cover the model: uncovered {uncovered}, "
                           f"unexpected {extra_targets}")
    names = list(arrays.keys())
    used = {source for rule in rules for source in rule.sources}
    unknown = sorted(n for n in names if n not in used and not skip(n))
    present = set(names)
    missing = []
    for rule in rules:
        missing.extend(s for s in rule.sources if s not in present and s not in missing)
    mis_shaped = []
    shapes = _shapes(arrays, names)
    for rule in rules:
        for source, expected in zip(rule.sources, rule.shapes):
            if source in present and tuple(shapes[source]) != expected:
                mis_shaped.append((source, expected, tuple(shapes[source])))
    if unknown or missing or mis_shaped:
        raise CheckpointMismatchError(what, unknown, missing, mis_shaped, hint=hint)

    values = {}
    for rule in rules:
        value = np.asarray(rule.fn(*[np.asarray(arrays[s]) for s in rule.sources]))
        variable = variables[rule.target]
        if tuple(value.shape) != tuple(variable.shape):
            raise RuntimeError(f"Importer bug: {rule.target} built with shape {value.shape}, "
                               f"variable has {tuple(variable.shape)}")
        values[rule.target] = value
    for name, value in values.items():
        variables[name].assign(value.astype(variables[name].dtype))
    return model


def _shapes(arrays, names):
    shape_of = getattr(arrays, "shape_of", None)
    if shape_of is not None:
        return {n: tuple(shape_of(n)) for n in names}
    return {n: tuple(np.shape(arrays[n])) for n in names}


def model_arrays(model):
    """The model's variables as NumPy arrays by their format-neutral names.

    Args:
        model: a keras_bert model.
    """
    return {name: np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
            for name, variable in model_variables(model).items()}


def export(model, rules):
    """Runs `rules` backwards: the model's variables as source-format arrays.

    Args:
        model: a keras_bert model.
        rules: list of `Rule` for this model (as given to `assign`).

    Returns:
        dict mapping source name -> NumPy array.
    """
    values = model_arrays(model)
    out = {}
    for rule in rules:
        value = values[rule.target]
        parts = rule.inverse(value) if rule.inverse is not None else [rule.fn(value)]
        for source, shape, part in zip(rule.sources, rule.shapes, parts):
            part = np.ascontiguousarray(part)
            if tuple(part.shape) != shape:
                raise RuntimeError(f"Exporter bug: {source} has shape {part.shape}, expected {shape}")
            out[source] = part
    return out
