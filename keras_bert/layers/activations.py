"""Activation functions by their Hugging Face `hidden_act` names, written with `keras.ops`.

They are registered Keras objects, so a `Dense(activation=...)` that uses one serializes.
"""

import keras
from keras import ops

from keras_bert.config import ACTIVATIONS


@keras.saving.register_keras_serializable(package="keras_bert")
def gelu_exact(x):
    """GELU with the exact erf form (Hugging Face `"gelu"`)."""
    return ops.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="keras_bert")
def gelu_tanh(x):
    """GELU with the tanh approximation (`"gelu_new"`, Google BERT's code, keras-hub)."""
    return ops.gelu(x, approximate=True)


# What each name of `keras_bert.config.ACTIVATIONS` computes -> its function.
_FUNCTIONS = {"gelu_erf": gelu_exact, "gelu_tanh": gelu_tanh, "relu": keras.activations.relu,
              "silu": keras.activations.silu, "tanh": keras.activations.tanh}


def get_activation(name):
    """Returns the function for an activation name.

    Args:
        name: str. One of `keras_bert.config.ACTIVATIONS`: `gelu`, `gelu_new`, `gelu_pytorch_tanh`,
            `gelu_fast`, `relu`, `silu`, `swish`, `tanh`.
    """
    try:
        return _FUNCTIONS[ACTIVATIONS[name]]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
