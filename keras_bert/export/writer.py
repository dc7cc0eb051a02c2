"""Writing SavedModels in TF Serving's layout: `BASE/NAME/<version>/`, warmup records, server configs.

A version is written into a hidden temporary directory inside `BASE/NAME` and then
renamed to its number, so a server polling `BASE/NAME` never sees half a version
(TF Serving ignores names that are not integers).
"""

import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from keras_bert.export.module import EXAMPLE_SIGNATURES, MASK_TEXT, ServingModule, task_model
from keras_bert.export.precision import check_precision, is_quantized, load_for_precision

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODELS_CONFIG_FILE = "models.config"
BATCHING_PARAMETERS_FILE = "batching_parameters.txt"
SIGNATURES = ("serving_default", "serve_ids", "serve_examples")

BATCHING_PARAMETERS = """\
# Text-format BatchingParameters for `--enable_batching --batching_parameters_file`
# (tensorflow_model_server or serving.server). Written by keras_bert export.
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 4 }
# serve_ids takes [batch, length] ids: pad the length axis so requests of
# different lengths can share a batch (serving_default takes raw strings).
pad_variable_length_inputs: true
"""


def version_dirs(model_dir):
    """Returns `{version: path}` of the integer-named directories of `BASE/NAME`, as TF Serving lists them.

    Temporary or other non-numeric names (`.tmp-export-2-...`, `2.tmp`, `notes/`) and plain files are
    not versions, so a version can be written elsewhere and renamed into place.

    Args:
        model_dir: str. `BASE/NAME`; may not exist (or not be readable): then `{}`.
    """
    try:
        names = os.listdir(model_dir)
    except OSError:
        return {}
    # ASCII digits that fit an int64, as TF Serving's absl::SimpleAtoi ("²" or "٢" is no version).
    return {int(name): os.path.join(model_dir, name) for name in names
            if re.fullmatch(r"[0-9]+", name, re.ASCII) and int(name) < 2**63
            and os.path.isdir(os.path.join(model_dir, name))}


def version_numbers(model_dir):
    """Returns the sorted integer versions of `BASE/NAME` (see `version_dirs`).

    Args:
        model_dir: str. `BASE/NAME`; may not exist.
    """
    return sorted(version_dirs(model_dir))


def next_version(model_dir):
    """Returns the version after the newest existing one (1 for a new model).

    Args:
        model_dir: str. `BASE/NAME`.
    """
    versions = version_numbers(model_dir)
    return versions[-1] + 1 if versions else 1


def warmup_texts(text_inputs):
    """Returns a small batch of warmup inputs (an empty string, a short and a masked text).

    Args:
        text_inputs: tuple of str. The `serving_default` input names.
    """
    samples = {
        "text": ["", "warm up the model", f"warm up {MASK_TEXT} model"],
        "text_pair": ["", "a second segment", "another one"],
        "question": ["", "what is warmed up?", "why?"],
        "context": ["", "the model is warmed up before serving", "because of latency"],
    }
    return {name: samples[name] for name in text_inputs}


def write_warmup_requests(saved_model_dir, model_name, inputs):
    """Writes `assets.extra/tf_serving_warmup_requests`: one PredictionLog for `serving_default`.

    Args:
        saved_model_dir: str. The version directory (or its staging directory).
        model_name: str. The served model name put in the request's model spec.
        inputs: dict of str to list of str. The request's string inputs.

    Returns:
        str: the warmup file path.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto([v.encode("utf-8") for v in values], dtype=tf.string))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path


def write_bucket_warmup_requests(saved_model_dir, model_name, module):
    """Appends one `serve_ids` PredictionLog per `module.warmup_shapes` (batch, length) of an XLA-compiled export.

    Each record compiles the model function for its shape when the server loads the version,
    so no request pays a compilation (all signatures share the compiled function).

    Args:
        saved_model_dir: str. The version directory (or its staging directory).
        model_name: str. The served model name put in the requests' model spec.
        module: ServingModule. Its `warmup_shapes` and `id_inputs`.

    Returns:
        int: the number of records written.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    records = [] if not os.path.exists(path) else [r.numpy() for r in tf.data.TFRecordDataset(path)]
    for batch, length in module.warmup_shapes:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serve_ids"))
        for name in module.id_inputs:
            shape = (batch, 1) if name == "masked_positions" else (batch, length)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(np.ones(shape, np.int32)))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return len(module.warmup_shapes)


def write_model_server_config(base_path, model_name, model_dir):
    """Adds (or updates) `model_name` in `BASE/models.config`, a text ModelServerConfig.

    Args:
        base_path: str. The directory that holds the model directories.
        model_name: str. The model name clients use.
        model_dir: str. `BASE/NAME`; written as an absolute `base_path`.

    Returns:
        str: the config file path.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.path.join(base_path, MODELS_CONFIG_FILE)
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text_format.Parse(f.read(), config)
    entries = config.model_config_list.config
    entry = next((c for c in entries if c.name == model_name), None)
    if entry is None:
        entry = entries.add(name=model_name, model_platform="tensorflow")
    entry.base_path = os.path.abspath(model_dir)
    if not entry.HasField("model_version_policy"):
        entry.model_version_policy.latest.num_versions = 1
    _write_atomically(path, "# ModelServerConfig for tensorflow_model_server --model_config_file "
                            "(written by keras_bert export).\n" + text_format.MessageToString(config))
    return path


def write_batching_parameters(base_path):
    """Writes `BASE/batching_parameters.txt` unless it exists (so hand tuning is kept).

    Args:
        base_path: str. The directory that holds the model directories.

    Returns:
        str: the file path.
    """
    path = os.path.join(base_path, BATCHING_PARAMETERS_FILE)
    if not os.path.exists(path):
        _write_atomically(path, BATCHING_PARAMETERS)
    return path


def _write_atomically(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    handle, staging = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(staging, 0o644)
    os.replace(staging, path)


def export(model, out, task, vocabulary, lowercase=True, version=None, max_length=None, pooling=None, pair=False,
           top_k=None, max_answer_length=30, warmup=True, server_configs=True, doc_stride=128,
           explain_steps=None,
           precision=None):
    """Exports a Keras model with its tokenizer as `out/<version>/` for TF Serving.

    Args:
        model: keras.Model. A keras_bert model fitting `task` (see `task_model`).
        out: str. `BASE/NAME`, the model's directory in TF Serving's layout.
        task: str or None. A `keras_bert.tasks.KINDS` name; None: the model's own task (embedding for an encoder).
        vocabulary: str or list[str]. The WordPiece vocabulary.
        lowercase: bool. Tokenizer casing.
        version: int or None. None: the next integer after the existing versions.
        max_length: int or None. Truncation length; None: the model's maximum, at most 512.
        pooling: str or None. For embedding: "mean" (default) or "cls".
        pair: bool. For classification/regression: take `text` and `text_pair`.
        top_k: int or None. fill_mask: number of predictions; summarization: sentences per aspect.
        max_answer_length: int. For qa: the longest answer in word pieces.
        doc_stride: int. For token_classification: stride of the windows over long texts.
        warmup: bool. Write TF Serving warmup records.
        server_configs: bool. Write `models.config` and `batching_parameters.txt` in BASE.
        explain_steps: int or None. Add the `explain` signature with this many Integrated Gradients steps.
        precision: str or None. The `keras_bert.export.PRECISIONS` name of `model`'s weights (see
            `load_for_precision`); None: "int8" for a quantized model, else "float32".

    Returns:
        str: the version directory.
    """
    out = os.path.abspath(os.fspath(out))
    model_name = os.path.basename(out)
    if not model_name:
        raise ValueError(f"--out must be BASE/NAME, got {out!r}")
    if task is None:
        from keras_bert import tasks

        task = tasks.for_model(model).name
    if precision is None:
        precision = "int8" if is_quantized(model) else "float32"
    module = ServingModule(task_model(model, task, pooling), task, vocabulary, lowercase=lowercase,
                           max_length=max_length, pair=pair, top_k=top_k, max_answer_length=max_answer_length,
                           doc_stride=doc_stride, explain_steps=explain_steps, precision=precision)
    os.makedirs(out, exist_ok=True)
    version = next_version(out) if version is None else int(version)
    if version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version}")
    final = os.path.join(out, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists; versions are immutable, pick another --version")
    staging = tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=out)
    try:
        os.chmod(staging, 0o755)  # mkdtemp is private; a server may run as another user
        tf.saved_model.save(module, staging, signatures=module.signatures())
        if task in EXAMPLE_SIGNATURES:
            set_method_name(staging, *EXAMPLE_SIGNATURES[task])
        if warmup:
            write_warmup_requests(staging, model_name, warmup_texts(module.text_inputs))
            if module.warmup_shapes:
                write_bucket_warmup_requests(staging, model_name, module)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if server_configs:
        base = os.path.dirname(out)
        write_model_server_config(base, model_name, out)
        write_batching_parameters(base)
    return final


def set_method_name(saved_model_dir, signature_key, method_name):
    """Sets a SignatureDef's `method_name` (tf.saved_model.save writes `tensorflow/serving/predict` for all).

    Args:
        saved_model_dir: str. A SavedModel directory.
        signature_key: str. The signature.
        method_name: str. E.g. `tensorflow/serving/classify`.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(saved_model_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[signature_key].method_name = method_name
    with open(path, "wb") as handle:
        handle.write(saved_model.SerializeToString())
    fingerprint = os.path.join(saved_model_dir, "fingerprint.pb")
    if os.path.exists(fingerprint):  # its checksum covers saved_model.pb
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

        with open(fingerprint, "wb") as handle:
            handle.write(fingerprinting.CreateFingerprintDef(saved_model_dir))


def export_model_dir(model_dir, out, task=None, precision=None, **kwargs):

    """Loads a keras_bert model directory (model + tokenizer settings) and exports it.

    Args:
        model_dir: str. A directory `keras_bert.save` or a converter wrote.
        out: str. `BASE/NAME`.
        task: str. See `export`.
        precision: str or None. One of `keras_bert.export.PRECISIONS`: "float32" (None),
            "bfloat16" (bfloat16 weights and matmuls; outputs stay float32) or "int8"
            (Keras int8 quantization, XLA-compiled model function; see `keras_bert.export.precision`).
        **kwargs: the other arguments of `export`.

    Returns:
        str: the version directory.
    """
    import keras_bert

    precision = check_precision(precision)
    settings = keras_bert.load_tokenizer_settings(model_dir, require_vocab=True)
    model = load_for_precision(model_dir, precision)
    return export(model, out, task, settings["vocab_file"], lowercase=settings.get("lowercase", True),
                  precision=precision, **kwargs)
