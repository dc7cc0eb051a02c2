"""Export precisions: which weights a served model stores and how its matmuls run.

- `float32`: float32 weights and math.
- `bfloat16`: weights stored in bfloat16 (Keras dtype policy `"bfloat16"`), so no per-call
  cast of float32 variables; LayerNorm, softmax and the task outputs stay float32. Matmuls
  reach oneDNN's AMX/AVX512-BF16 kernels; no XLA (XLA:CPU runs bfloat16 dots in float32).
- `int8`: Keras `quantize("int8")`: int8 weights with one scale per output channel,
  activations quantized per token at run time, the quantized Dense layers run through the
  export kernel `INT8_KERNEL` (`keras_bert.export.int8`). An XLA kernel is compiled nested
  inside the signature (the tokenizer stays outside), on inputs padded to
  `LENGTH_BUCKETS` x `BATCH_BUCKETS`; TF Serving then needs `--xla_cpu_compilation_enabled=true`.

Example (needs a model directory):

    model = load_for_precision("runs/sst2/model", "int8")
"""

PRECISIONS = ("float32", "bfloat16", "int8")
# The `keras_bert.export.int8.KERNELS` name int8 exports use, and the Keras dtype policy the
# rest of their model (attention, softmax, GELU) runs under.
INT8_KERNEL = "xla"
INT8_POLICY = "float32"
# Padded sequence lengths (word pieces) and batch sizes of an XLA-compiled export: one
# compilation (and one warmup record) each; a longer batch pads to a multiple of the last.
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)
BATCH_BUCKETS = (1, 8, 32)
# The attribute `jit_compile=True` leaves on a function in a SavedModel.
XLA_ATTRIBUTE = "_XlaMustCompile"


def check_precision(precision):
    """Returns `precision` (None: "float32"), or raises ValueError naming the choices.

    Args:
        precision: str or None. One of `PRECISIONS`.
    """
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def is_quantized(model):
    """Whether any layer of `model` runs a Keras quantized (e.g. int8) dtype policy.

    Args:
        model: keras.Model.
    """
    return any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())


def load_for_precision(model_dir, precision):
    """Loads a keras_bert model directory for an export at `precision`.

    Args:
        model_dir: str. A `keras_bert.save` directory.
        precision: str or None. One of `PRECISIONS` (None: "float32").

    Returns:
        keras.Model: float32, bfloat16-weight, or int8-quantized.
    """
    import keras_bert

    precision = check_precision(precision)
    if precision == "bfloat16":
        return keras_bert.load(model_dir, dtype_policy="bfloat16")
    if precision == "float32":
        return keras_bert.load(model_dir)
    model = keras_bert.load(model_dir, dtype_policy=INT8_POLICY)
    if not is_quantized(model):
        quantize_int8(model)
    int8_kernel(model)
    return model


def int8_kernel(model):
    """Returns the int8 kernel name of a quantized `model`, installing `INT8_KERNEL` if it has none.

    Args:
        model: keras.Model. Quantized (`quantize_int8`).
    """
    from keras_bert.export import int8

    if int8.kernel_of(model) is None:
        int8.use_kernel(model, INT8_KERNEL)
    return int8.kernel_of(model)


def quantize_int8(model):
    """Quantizes every Dense and Embedding of `model` in place with Keras' int8 scheme.

    Args:
        model: keras.Model. A built keras_bert model.
    """
    import warnings

    with warnings.catch_warnings():  # Keras warns once per layer kind it has nothing to quantize in.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize("int8")
    return model


def bucket(size, buckets):
    """The smallest of `buckets` that holds `size`; beyond the last, the next multiple of it.

    Args:
        size: int. A batch size or sequence length.
        buckets: tuple of int. Increasing.
    """
    for candidate in buckets:
        if size <= candidate:
            return candidate
    return -(-size // buckets[-1]) * buckets[-1]


def length_buckets(max_length):
    """The padded lengths of an XLA export truncating at `max_length` (which is the last one).

    Args:
        max_length: int. The export's truncation length.
    """
    return tuple(length for length in LENGTH_BUCKETS if length < max_length) + (int(max_length),)


def uses_xla(saved_model_dir):
    """Whether a SavedModel holds an XLA-compiled (`jit_compile=True`) function.

    Args:
        saved_model_dir: str. A SavedModel directory.
    """
    import os

    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        for function in meta_graph.graph_def.library.function:
            attr = function.attr.get(XLA_ATTRIBUTE)
            if attr is not None and attr.b:
                return True
    return False
