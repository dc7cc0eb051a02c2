"""Loading, version polling and status of the served SavedModels.

Mirrors the parts of TF Serving's manager that a client can observe: the
`BASE/NAME/<integer version>/` layout, version policies and labels,
availability-preserving reloads (a new version is loaded before the old one is
unloaded), bounded load retries, warmup replay and the version states
START/LOADING/AVAILABLE/UNLOADING/END.
"""

import logging
import os
import threading

import numpy as np
import tensorflow as tf
# TF Serving's stock build links the tensorflow-text ops; importing the package registers them here.
import tensorflow_text  # noqa: F401
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from keras_bert.export import WARMUP_FILE, unservable_ops, uses_xla, version_dirs
from serving._errors import (
    ServingError,
    failed_precondition,
    invalid_argument,
    not_found,
)

logger = logging.getLogger("serving")

DEFAULT_SIGNATURE = "serving_default"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit on replayed warmup records
# What TensorFlow answers when a model's XLA function is run with XLA:CPU JIT disabled
# (TF Serving's default; `--xla_cpu_compilation_enabled=true` enables it).
XLA_DISABLED_MESSAGE = "XLA compilation disabled"

# tf.errors codes are the canonical codes; map them to names for ServingError.
_TF_ERROR_NAMES = {
    3: "INVALID_ARGUMENT",
    5: "NOT_FOUND",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    14: "UNAVAILABLE",
}


def read_signature_defs(path):
    """Reads the `serve` MetaGraph's SignatureDefs from a SavedModel directory.

    Args:
        path: str. A SavedModel directory.
    """
    saved_model = saved_model_pb2.SavedModel()
    binary_path = os.path.join(path, "saved_model.pb")
    text_path = os.path.join(path, "saved_model.pbtxt")
    if os.path.exists(binary_path):
        with open(binary_path, "rb") as model_file:
            saved_model.ParseFromString(model_file.read())
    elif os.path.exists(text_path):
        with open(text_path, encoding="utf-8") as model_file:
            text_format.Parse(model_file.read(), saved_model)
    else:
        raise ServingError(
            "NOT_FOUND", f"SavedModel not found in export directory: {path}"
        )
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph.signature_def
    raise ServingError(
        "NOT_FOUND",
        f"Could not find meta graph def matching supplied tags: {{ serve }} in {path}",
    )


def check_ops(path):
    """Refuses a SavedModel whose graph holds an op TF Serving cannot run (`keras_bert.export.unservable_ops`).

    Args:
        path: str. A SavedModel directory.
    """
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        return
    unknown = unservable_ops(path)
    if unknown:
        raise ServingError(
            "NOT_FOUND",
            f"Op type not registered '{unknown[0]}' in binary running on tensorflow_model_server "
            f"(ops TF Serving cannot run: {', '.join(unknown)})",
        )


def _error_from_tf(error):
    code = _TF_ERROR_NAMES.get(getattr(error, "error_code", None), "INTERNAL")
    return ServingError(code, getattr(error, "message", str(error)))


class Servable:
    """One loaded version of a model.

    Args:
        name: str. The model name.
        version: int. The version number.
        path: str. The SavedModel directory.
        xla_cpu_compilation_enabled: bool. As TF Serving's flag: without it a model with an
            XLA-compiled (`jit_compile=True`) function is refused.
    """

    def __init__(self, name, version, path, xla_cpu_compilation_enabled=False):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        if not xla_cpu_compilation_enabled and uses_xla(path):
            raise ServingError(
                "INTERNAL", f"{XLA_DISABLED_MESSAGE}: {path} has an XLA-compiled function "
                            f"(start the server with --xla_cpu_compilation_enabled=true)")
        check_ops(path)
        self._loaded = tf.saved_model.load(path, tags=["serve"])
        self._functions = dict(self._loaded.signatures)

    def signature_def(self, signature_name):
        """Returns the SignatureDef proto that `signature_name` names.

        Args:
            signature_name: str. Empty means `serving_default`.
        """
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in self._functions:
            raise failed_precondition(
                f'Serving signature key "{signature_name}" not found.'
            )
        return self.signature_defs[signature_name]

    def input_dtypes(self, signature_name):
        """Returns `{input name: tf.DType}` for a signature.

        Args:
            signature_name: str. Empty means `serving_default`.
        """
        signature = self.signature_def(signature_name)
        return {
            name: tf.dtypes.as_dtype(info.dtype)
            for name, info in signature.inputs.items()
        }

    def check_inputs(self, signature_name, arrays):
        """Validates names, dtypes and shapes of `arrays` against the signature.

        Args:
            signature_name: str. Empty means `serving_default`.
            arrays: dict of str to np.ndarray.
        """
        signature = self.signature_def(signature_name)
        required = set(signature.inputs)
        if set(arrays) != required:
            extra = sorted(set(arrays) - required)
            missing = sorted(required - set(arrays))
            raise invalid_argument(
                f"input size does not match signature: {len(arrays)}!={len(required)} "
                f"len({{{','.join(sorted(arrays))}}}) != len({{{','.join(sorted(required))}}}). "
                f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
            )
        for name, array in arrays.items():
            info = signature.inputs[name]
            dtype = tf.dtypes.as_dtype(info.dtype)
            is_string = array.dtype == object or array.dtype.kind in "SU"
            if (dtype == tf.string) != is_string or (
                not is_string and tf.dtypes.as_dtype(array.dtype) != dtype
            ):
                got = "string" if is_string else tf.dtypes.as_dtype(array.dtype).name
                raise invalid_argument(
                    f"Expects arg[{name}] to be {dtype.name} but {got} is provided"
                )
            if info.tensor_shape.unknown_rank:
                continue
            expected = [dim.size for dim in info.tensor_shape.dim]
            if len(expected) != array.ndim or any(
                size >= 0 and size != actual
                for size, actual in zip(expected, array.shape)
            ):
                raise invalid_argument(
                    f"Input '{name}' has shape {list(array.shape)} but the "
                    f"signature expects {expected} (-1: any size)"
                )

    def run(self, signature_name, arrays, output_filter=()):
        """Runs a signature on numpy inputs and returns numpy outputs.

        Args:
            signature_name: str. Empty means `serving_default`.
            arrays: dict of str to np.ndarray. Already checked inputs.
            output_filter: sequence of str. Outputs to return (all if empty).
        """
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_def(signature_name)
        seen = set()
        for name in output_filter:
            if name in seen:
                raise invalid_argument(f"duplicate output tensor alias: {name}")
            seen.add(name)
            if name not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {name} "
                    f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
        function = self._functions[signature_name]
        feeds = {
            name: tf.constant(
                array, dtype=tf.dtypes.as_dtype(signature.inputs[name].dtype)
            )
            for name, array in arrays.items()
        }
        try:
            results = function(**feeds)
        except tf.errors.OpError as error:
            raise _error_from_tf(error)
        except (TypeError, ValueError) as error:
            raise invalid_argument(str(error))
        wanted = set(output_filter) or set(results)
        return {name: np.asarray(value.numpy()) for name, value in results.items()
                if name in wanted}

    def warmup(self, run_fn):
        """Replays `assets.extra/tf_serving_warmup_requests` like TF Serving.

        Args:
            run_fn: callable `(servable, signature_name, arrays)` that runs a
                request (through the batcher when batching is on).

        Returns:
            The number of replayed requests.
        """
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        replayed = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                logger.warning(
                    "%s v%d: skipping warmup record of type %s (only predict "
                    "is replayed)", self.name, self.version, log.WhichOneof("log_type")
                )
                continue
            request = log.predict_log.request
            arrays = {
                name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
            }
            signature_name = request.model_spec.signature_name
            self.check_inputs(signature_name, arrays)
            run_fn(self, signature_name, arrays)
            replayed += 1
        return replayed


class _ModelState:
    """What the manager knows about one model: servables and version states."""

    def __init__(self, spec):
        self.spec = spec
        self.servables = {}  # version -> Servable, only AVAILABLE ones
        self.states = {}  # version -> (state, error_code, error_message)
        self.failures = {}  # version -> failed load attempts


class ModelManager:
    """Loads the configured models, polls for new versions and resolves requests.

    Args:
        specs: list of ModelSpec. The models to serve.
        run_fn: callable `(servable, signature_name, arrays)`, used for warmup.
        max_num_load_retries: int. Retries of a failed version load (one per
            poll), as TF Serving's flag of the same name.
        xla_cpu_compilation_enabled: bool. Serve models with XLA-compiled functions (TF Serving's flag).
    """

    def __init__(self, specs, run_fn, max_num_load_retries=5, xla_cpu_compilation_enabled=False):
        self._xla_cpu_compilation_enabled = bool(xla_cpu_compilation_enabled)
        self._models = {spec.name: _ModelState(spec) for spec in specs}
        self._run_fn = run_fn
        self._max_load_attempts = max_num_load_retries + 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_thread = None

    def start(self, poll_wait_seconds):
        """Loads the current versions, then polls every `poll_wait_seconds`.

        Args:
            poll_wait_seconds: float. 0 or negative: load once at start and
                never poll again (TF Serving's negative value, "no polling at
                all", would serve nothing).
        """
        self.poll_once()
        if poll_wait_seconds > 0:
            self._poll_thread = threading.Thread(
                target=self._poll_loop, args=(poll_wait_seconds,),
                name="version-poller", daemon=True,
            )
            self._poll_thread.start()

    def stop(self):
        """Stops polling."""
        self._stop.set()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout=5)

    def _poll_loop(self, poll_wait_seconds):
        while not self._stop.wait(poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the poller
                logger.exception("version poll failed")

    def poll_once(self):
        """Brings every model in line with its base path once."""
        for model in self._models.values():
            try:
                self._sync_model(model)
            except Exception:  # one model's bad directory never stops the others' polling
                logger.exception("version poll of %s failed", model.spec.name)

    def _set_state(self, model, version, state, code="OK", message=""):
        with self._lock:
            model.states[version] = (state, code, message)

    def _sync_model(self, model):
        spec = model.spec
        on_disk = version_dirs(spec.base_path)
        if not on_disk and not model.servables:
            if not model.states:
                logger.warning(
                    "No versions of servable %s found under base path %s",
                    spec.name, spec.base_path,
                )
        desired = spec.policy.select(on_disk)
        # Load first (newest first), so the old version keeps serving meanwhile.
        for version in sorted(desired - set(model.servables), reverse=True):
            attempts = model.failures.get(version, 0)
            if attempts >= self._max_load_attempts:
                continue
            self._load(model, version, on_disk[version])
        available_desired = desired & set(model.servables)
        if not available_desired and on_disk:
            return  # keep whatever serves now rather than serve nothing
        # No version left on disk: TF Serving unloads the model (requests get 404).
        for version in sorted(set(model.servables) - desired):
            self._set_state(model, version, "UNLOADING")
            with self._lock:
                # In-flight requests hold a reference and finish normally.
                del model.servables[version]
            self._set_state(model, version, "END")
            logger.info("Unloaded %s version %d", spec.name, version)

    def _load(self, model, version, path):
        name = model.spec.name
        self._set_state(model, version, "LOADING")
        logger.info("Loading %s version %d from %s", name, version, path)
        try:
            servable = Servable(name, version, path, self._xla_cpu_compilation_enabled)
            replayed = servable.warmup(self._run_fn)
        except Exception as error:  # any load failure is reported, not fatal
            model.failures[version] = model.failures.get(version, 0) + 1
            message = getattr(error, "message", None) or str(error)
            code = getattr(error, "code", "UNKNOWN")
            if isinstance(code, int):
                code = _TF_ERROR_NAMES.get(code, "UNKNOWN")
            self._set_state(model, version, "END", code, message[:2000])
            logger.error(
                "Failed to load %s version %d (attempt %d of %d): %s",
                name, version, model.failures[version], self._max_load_attempts,
                message[:500],
            )
            return
        with self._lock:
            model.servables[version] = servable
            model.states[version] = ("AVAILABLE", "OK", "")
        logger.info(
            "Successfully loaded %s version %d%s", name, version,
            f" ({replayed} warmup requests)" if replayed else "",
        )

    def check_version_labels(self):
        """Raises FAILED_PRECONDITION if a version label points at a version that is not AVAILABLE.

        TF Serving refuses such a config (`server_core.cc`); called after the first load.
        """
        for name, model in self._models.items():
            for label, version in sorted(model.spec.version_labels.items()):
                with self._lock:
                    available = version in model.servables
                if not available:
                    raise failed_precondition(
                        f"Request to assign label {label} to version {version} of model {name}, which is not "
                        "currently available. Labels can only point to AVAILABLE versions")

    def _model(self, name):
        model = self._models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        return model

    def _label_version(self, model, label):
        version = model.spec.version_labels.get(label)
        if version is None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    def resolve(self, name, version=None, label=None):
        """Returns the Servable a request names.

        Args:
            name: str. The model name.
            version: int or None. A specific version.
            label: str or None. A version label (used when `version` is None).
        """
        model = self._models.get(name)
        if model is not None and label:
            version = self._label_version(model, label)
        with self._lock:
            servables = dict(model.servables) if model is not None else {}
        if version is not None:
            servable = servables.get(int(version))
            if servable is None:
                raise not_found(
                    f"Servable not found for request: Specific({name}, {version})"
                )
            return servable
        if not servables:
            raise not_found(f"Servable not found for request: Latest({name})")
        return servables[max(servables)]

    def status(self, name, version=None, label=None):
        """Returns `model_version_status` entries like TF Serving's GetModelStatus.

        Args:
            name: str. The model name.
            version: int or None. Only this version.
            label: str or None. Only the version with this label.
        """
        model = self._models.get(name)
        if model is None:
            raise not_found(f"Could not find any versions of model {name}")
        if label:
            version = self._label_version(model, label)
        with self._lock:
            states = dict(model.states)
        if version is not None:
            if int(version) not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            states = {int(version): states[int(version)]}
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return [
            {
                "version": str(number),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
            for number, (state, code, message) in sorted(states.items(), reverse=True)
        ]
