"""Keras quantization (`model.quantize("int8")`) carried through `get_config`, so quantized models reload.

Keras rebuilds a model from its config with float layers; the int8 weights saved in a
`.keras` archive (an int8 kernel and its scale per layer) then do not fit them. The
keras_bert models therefore store `{layer path: quantization mode}` in their config and
quantize those layers again when rebuilt, before the weights are loaded.
"""

import warnings


def quantized_layers(model):
    """Returns `{layer path: quantization mode}` of the quantized layers of `model`.

    Args:
        model: keras.Model.
    """
    return {layer.path: layer.quantization_mode for layer in model._flatten_layers()
            if getattr(layer, "quantization_mode", None)}


def requantize(model, layers):
    """Quantizes the named layers of a rebuilt `model` that are not quantized yet (in place).

    Args:
        model: keras.Model. Built, with float layers.
        layers: dict of str to str. `quantized_layers` of the saved model.

    Raises:
        ValueError: naming a layer path that `model` does not have.
    """
    if not layers:
        return model
    by_path = {layer.path: layer for layer in model._flatten_layers()}
    missing = sorted(set(layers) - set(by_path))
    if missing:
        raise ValueError(f"{model.name}: quantized layers {missing} are not in the rebuilt model")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        for path, mode in layers.items():
            layer = by_path[path]
            if getattr(layer, "quantization_mode", None) != mode:
                layer.quantize(mode)
    return model
