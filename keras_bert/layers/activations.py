"""Activation functions by their Hugging Face `hidden_act` names, written with `keras.ops`."""

from keras import ops


def gelu_exact(x):
    """GELU with the exact erf form (Hugging Face `"gelu"`)."""
    return ops.gelu(x, approximate=False)


def gelu_tanh(x):
    """GELU with the tanh approximation (`"gelu_new"`, Google BERT's code, keras-hub)."""
    return ops.gelu(x, approximate=True)


_ACTIVATIONS = {
    "gelu": gelu_exact,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": ops.relu,
    "silu": ops.silu,
    "swish": ops.silu,
    "tanh": ops.tanh,
}


def get_activation(name):
    """Returns the function for an activation name.

    Args:
        name: str. One of `gelu`, `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`,
            `relu`, `silu`, `swish`, `tanh`.
    """
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None
