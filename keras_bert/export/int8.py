"""How an int8 export runs its quantized Dense layers: the export-time kernels (TensorFlow only).

Keras `quantize("int8")` stores each Dense kernel as int8 with one scale per output channel and
quantizes the activations per token at run time (`keras.quantizers.abs_max_quantize`, axis -1).
Its `_int8_call` then runs `BatchMatMulV3(int8, int8 -> int32)`, which is fast on CPU only under
XLA. The export replaces that call on each quantized `Dense` with one of `KERNELS`, all computing
the same numbers (the same per-token / per-channel scheme, an exact int32 accumulator):

- `"xla"`: Keras' own call; the *whole* model function is XLA-compiled (`ServingModule` pads
  inputs to length/batch buckets). Attention, softmax and LayerNorm then run under XLA:CPU too.
- `"xla_dense"`: each quantized Dense (quantize, int8 GEMM, dequantize, bias) is its own small
  XLA cluster; attention, softmax, LayerNorm and GELU stay on TensorFlow's oneDNN/Eigen kernels
  (in bfloat16 for a model built under the `"bfloat16"` policy). Inputs are still padded to
  buckets, so no request compiles.
- `"xla_rows"`: the `"xla_dense"` clusters without padding the inputs: each cluster pads its
  `[batch * length, features]` rows to the next of `ROW_BUCKETS` itself (a few rows instead of
  whole padded sequences through every layer).
- `"onednn"`: no XLA: activations shifted to uint8 (`q + 128`) feed TensorFlow's
  `QuantizedMatMulWithBias` (oneDNN's u8 x s8 -> s32 inner product, AMX-INT8 where present),
  whose MIN_FIRST zero-point compensation removes the shift exactly.

Example (needs a quantized model):

    use_kernel(model, "xla_dense")   # model's quantized Dense layers now run that kernel
"""

import functools

import tensorflow as tf

KERNELS = ("xla", "xla_dense", "xla_rows", "onednn")
# Kernels that need the inputs padded to fixed length/batch buckets (each shape compiles once).
BUCKETED_KERNELS = ("xla", "xla_dense")


def _row_buckets(first=(16, 32, 64, 128), last=16384):
    buckets = list(first)
    while buckets[-1] < last:
        buckets.append(min(last, -(-buckets[-1] * 9 // 8 // 16) * 16))
    return tuple(buckets)


# Row counts the "xla_rows" clusters are compiled for: 16..128 doubling, then steps of at most 1/8
# (multiples of 16) up to 16384 rows (32 x 512); beyond, multiples of the last.
ROW_BUCKETS = _row_buckets()
_ATTRIBUTE = "_keras_bert_int8_kernel"
# Keras' `abs_max_quantize` range and epsilon (keras.backend.epsilon()).
_QMAX = 127.0
_EPSILON = 1e-7


def kernel_of(model):
    """The `KERNELS` name installed on `model` by `use_kernel` (None: none yet)."""
    return getattr(model, _ATTRIBUTE, None)


def use_kernel(model, kernel):
    """Makes every int8-quantized `Dense` of `model` run `kernel` (in place); returns `model`.

    Args:
        model: keras.Model. Quantized with `keras_bert.export.precision.quantize_int8`.
        kernel: str. One of `KERNELS`.

    Raises:
        ValueError: for an unknown kernel, or a quantized Dense with LoRA enabled.
    """
    import keras

    if kernel not in KERNELS:
        raise ValueError(f"int8 kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    matmul = {"xla": None, "xla_dense": _xla_dense, "xla_rows": _xla_rows, "onednn": _onednn_dense}[kernel]
    for layer in model._flatten_layers():
        if not (isinstance(layer, keras.layers.Dense) and getattr(layer, "quantization_mode", None) == "int8"):
            continue
        if getattr(layer, "lora_enabled", False):
            raise ValueError(f"{layer.path}: the int8 export kernels do not support LoRA")
        # An instance attribute shadows `Dense._int8_call` (restored by deleting it); set past
        # Keras' attribute tracking, which has nothing to track in a function.
        if "_int8_call" in layer.__dict__:
            del layer.__dict__["_int8_call"]
        if matmul is not None:
            object.__setattr__(layer, "_int8_call", functools.partial(_dense_call, layer, matmul))
    object.__setattr__(model, _ATTRIBUTE, kernel)
    return model


def _dense_call(layer, matmul, inputs, training=None):
    """`Dense._int8_call` through `matmul(inputs, int8 kernel, kernel scale, bias)`."""
    bias = layer.bias if layer.bias is not None else tf.zeros([layer.units], layer.compute_dtype)
    x = matmul(tf.convert_to_tensor(inputs), tf.convert_to_tensor(layer._kernel),
               tf.convert_to_tensor(layer.kernel_scale), tf.convert_to_tensor(bias))
    return layer.activation(x) if layer.activation is not None else x


def _quantize_rows(x):
    """Keras' per-token abs-max quantization in float32: (rounded values in [-127, 127], scale)."""
    x = tf.cast(x, tf.float32)
    scale = _QMAX / (tf.reduce_max(tf.abs(x), axis=-1, keepdims=True) + _EPSILON)
    return tf.clip_by_value(tf.round(x * scale), -_QMAX, _QMAX), scale


def _dequantize(accumulator, scale, kernel_scale, bias, dtype):
    """int32 accumulator -> `dtype` outputs: divided by both scales, plus bias (as Keras)."""
    y = tf.cast(accumulator, tf.float32) / (tf.cast(kernel_scale, tf.float32) * scale)
    return tf.cast(y + tf.cast(bias, tf.float32), dtype)


def _flat(x):
    """`x` as rows `[-1, features]` and a function restoring its leading axes on an output."""
    if x.shape.rank == 2:
        return x, lambda y: y
    shape = tf.shape(x)
    return tf.reshape(x, [-1, shape[-1]]), lambda y: tf.reshape(y, tf.concat([shape[:-1], tf.shape(y)[-1:]], 0))


@tf.function(jit_compile=True, autograph=False)
def _xla_dense_matmul(x, kernel, kernel_scale, bias):
    q, scale = _quantize_rows(x)
    accumulator = tf.matmul(tf.cast(q, tf.int8), kernel, output_type=tf.int32)
    return _dequantize(accumulator, scale, kernel_scale, bias, x.dtype)


def _xla_dense(x, kernel, kernel_scale, bias):
    rows, restore = _flat(x)
    return restore(_xla_dense_matmul(rows, kernel, kernel_scale, bias))


def _xla_rows(x, kernel, kernel_scale, bias):
    from keras_bert.export.module import _bucket_size

    rows, restore = _flat(x)
    count = tf.shape(rows)[0]
    padded = tf.pad(rows, [[0, _bucket_size(count, ROW_BUCKETS) - count], [0, 0]])
    return restore(_xla_dense_matmul(padded, kernel, kernel_scale, bias)[:count])


def row_warmup_shapes(max_length, max_batch):
    """(batch, length) input shapes whose `batch * length` rows meet every row bucket up to `max_batch * max_length`.

    Args:
        max_length: int. The export's truncation length.
        max_batch: int. The largest batch to warm up.
    """
    shapes, previous, most = [], 0, max_batch * max_length
    for bucket in ROW_BUCKETS:
        if previous >= most:
            break
        bucket = min(bucket, most)
        batch = -(-bucket // max_length)
        length = min(max_length, bucket // batch)
        if batch * length > previous:
            shapes.append((batch, length))
        previous = bucket
    return shapes


def _onednn_dense(x, kernel, kernel_scale, bias):
    """Per-token int8 through `QuantizedMatMulWithBiasAndDequantize`: exact `sum(q * w)`, then dequantized.

    The activations `q` in [-127, 127] go in as uint8 `q + 128` declared over the range
    [-128, 127] (MIN_FIRST) and the weights over [-127, 127]: the op's scales are then 1 and its
    zero-point compensation (`-128 * column sums of w`) gives back `sum(q * w)` exactly, as float32
    (bias 0 inside the op). `floor(x * scale + 128.5)` is Keras' `round` but at exact ties.
    """
    rows, restore = _flat(x)
    rows = tf.cast(rows, tf.float32)
    scale = _QMAX / (tf.reduce_max(tf.abs(rows), axis=-1, keepdims=True) + _EPSILON)
    shifted = tf.bitcast(tf.cast(tf.round(rows * scale) + 128.0, tf.uint8), tf.quint8)
    accumulator = tf.raw_ops.QuantizedMatMulWithBiasAndDequantize(
        a=shifted, b=tf.bitcast(kernel, tf.qint8), bias=tf.zeros(tf.shape(kernel)[1:], tf.float32),
        min_a=-128.0, max_a=127.0, min_b=-127.0, max_b=127.0, min_freezed_output=-1.0, max_freezed_output=1.0,
        Toutput=tf.float32, input_quant_mode="MIN_FIRST")
    y = accumulator * (1.0 / scale) * (1.0 / tf.cast(kernel_scale, tf.float32)) + tf.cast(bias, tf.float32)
    return restore(tf.cast(y, x.dtype))
