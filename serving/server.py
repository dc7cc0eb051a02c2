"""A TF Serving-compatible development server for SavedModels.

Serves the same SavedModels as `tensorflow_model_server`, with its flag
names, its REST API (`/v1/models/...`) and its gRPC API
(`tensorflow.serving.PredictionService` and `ModelService`), for development
and tests on a machine without Docker. Production uses the real server; see
`serving/deploy/` and `serving/README.md`.

Examples:

```
python -m serving.server --port 8500 --rest_api_port 8501 \
    --model_name bert --model_base_path /models/bert
python -m serving.server --rest_api_port 8501 \
    --model_config_file models.config --enable_batching \
    --batching_parameters_file batching_parameters.txt
```

Security: a SavedModel is a program (TF SECURITY.md); serve only models you
trust. The server binds 127.0.0.1 unless told otherwise and has no
authentication, like `tensorflow_model_server`.
"""

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import urllib.parse
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import _inference
from serving._batching import DynamicBatcher
from serving._config import (
    ModelSpec,
    parse_batching_parameters,
    parse_model_config_file,
)
from serving._errors import ServingError, invalid_argument
from serving._http import HttpServer, Response, html_error, json_error
from serving._json_tensors import (
    arrays_to_response,
    parse_json_body,
    request_to_arrays,
)
from serving._models import DEFAULT_SIGNATURE, ModelManager

logger = logging.getLogger("serving")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32


class Predictor:
    """The request logic shared by the REST and gRPC front ends.

    Args:
        specs: list of ModelSpec. Models to serve.
        batching: BatchingParameters or None. None turns batching off.
        max_num_load_retries: int. As TF Serving's flag.
        xla_cpu_compilation_enabled: bool. As TF Serving's flag: serve models with XLA functions.
    """

    def __init__(self, specs, batching=None, max_num_load_retries=5, xla_cpu_compilation_enabled=False):
        self.batcher = DynamicBatcher(batching) if batching is not None else None
        self.models = ModelManager(
            specs, run_fn=self.run, max_num_load_retries=max_num_load_retries,
            xla_cpu_compilation_enabled=xla_cpu_compilation_enabled,
        )

    def run(self, servable, signature_name, arrays, output_filter=()):
        """Runs checked inputs on a servable, through the batcher if enabled.

        Args:
            servable: Servable. The model version.
            signature_name: str. Empty means `serving_default`.
            arrays: dict of str to np.ndarray.
            output_filter: sequence of str. Outputs to return.
        """
        if self.batcher is not None:
            return self.batcher.run(servable, signature_name, arrays, output_filter)
        return servable.run(signature_name, arrays, output_filter)

    def predict(self, name, version, label, signature_name, arrays, output_filter=()):
        """Resolves the servable, checks the inputs and runs them.

        Args:
            name: str. Model name.
            version: int or None. Model version.
            label: str or None. Version label.
            signature_name: str. Empty means `serving_default`.
            arrays: dict of str to np.ndarray.
            output_filter: sequence of str. Outputs to return.

        Returns:
            A tuple `(servable, outputs)`.
        """
        servable = self.models.resolve(name, version, label)
        servable.check_inputs(signature_name, arrays)
        return servable, self.run(servable, signature_name, arrays, output_filter)

    def metadata_dict(self, name, version, label):
        """Returns the REST `/metadata` body (TF Serving's JSON layout).

        Args:
            name: str. Model name.
            version: int or None. Model version.
            label: str or None. Version label.
        """
        servable = self.models.resolve(name, version, label)
        return {
            "model_spec": {
                "name": name,
                "signature_name": "",
                "version": str(servable.version),
            },
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    _signature_def_map(servable),
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
            },
        }

    def stop(self):
        """Stops polling and batching."""
        self.models.stop()
        if self.batcher is not None:
            self.batcher.stop()


def _signature_def_map(servable):
    proto = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        proto.signature_def[key].CopyFrom(signature)
    return proto


# ----------------------------------------------------------------------------
# REST front end
# ----------------------------------------------------------------------------

# TF Serving's regexes (model_servers/http_rest_api_util.cc), matched in full
# against the request target as sent (uri_path() keeps the query string).
# re.ASCII: RE2's \d is ASCII.
_V1_PATH = re.compile(r"(?i)/v1/.*", re.ASCII | re.DOTALL)
_POST_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)", re.ASCII)
_GET_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r"(?:\/(metadata))?", re.ASCII)
_CORS_ORIGIN = re.compile(r"https?://.*", re.DOTALL)
_INT64_MAX = 2**63 - 1


class _EarlyError(Exception):
    """A `ParseModelInfo` failure: TF Serving answers 400 with an empty body."""


def _model_info(name, version, label):
    """Decodes name and label (curl_easy_unescape) and converts the version, as ParseModelInfo."""
    name = urllib.parse.unquote_to_bytes(name).decode("utf-8", "surrogateescape")
    if version is not None:
        number = int(version)
        if number > _INT64_MAX:
            raise _EarlyError(f"Failed to convert version: {version} to numeric.")
        version = number
    if label is not None:
        label = urllib.parse.unquote_to_bytes(label).decode("utf-8", "surrogateescape")
    return name, version, label


def _json_response(status, body):
    return Response(status, json.dumps(body).encode("utf-8"))


class RestApi:
    """TF Serving's REST API (`HttpRestApiHandler::ProcessRequest`) on top of a `Predictor`.

    Args:
        predictor: Predictor. Runs the requests.
        max_json_depth: int. Deeper JSON nesting gets 400.
        timeout_ms: int. Per-request deadline (`--rest_api_timeout_in_ms`); 504 when it passes.
        max_workers: int. Threads that run requests.
    """

    def __init__(self, predictor, max_json_depth, timeout_ms=30000, max_workers=16):
        self.predictor = predictor
        self.max_json_depth = max_json_depth
        self.timeout = timeout_ms / 1000.0 if timeout_ms > 0 else None
        # A request that passes its deadline is answered 504 while its computation
        # finishes here (graph runs cannot be cancelled from Python).
        self._compute = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rest-run")

    def __call__(self, request):
        """Answers one `serving._http.Request`."""
        path, method = request.target, request.method
        if not _V1_PATH.fullmatch(path):
            return html_error(404)
        if method == "OPTIONS":
            origin = request.headers.get("origin", "")
            return Response(200 if _CORS_ORIGIN.match(origin) else 400, b"", content_type=None)
        try:
            return self._process(method, path, request.body)
        except _EarlyError:
            return Response(400, b"", content_type=None)
        except ServingError as error:
            return json_error(error.http_status, error.message)

    def _process(self, method, path, body):
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = _POST_PATH.fullmatch(path)
            if match is None:
                raise malformed
            name, version, label = _model_info(*match.group(1, 2, 3))
            verb = match.group(4)  # compared case-sensitively, as TF Serving does
            if verb not in ("predict", "classify", "regress"):
                raise malformed
            return self._deadline(lambda: self._post(verb, name, version, label, body))
        if method == "GET":
            match = _GET_PATH.fullmatch(path)
            if match is None:
                raise malformed
            if not match.group(1):
                raise invalid_argument("Missing model name in request.")
            name, version, label = _model_info(*match.group(1, 2, 3))
            if match.group(4) == "metadata":  # /METADATA is a status request in TF Serving
                return _json_response(200, self.predictor.metadata_dict(name, version, label))
            statuses = self.predictor.models.status(name, version, label)
            return _json_response(200, {"model_version_status": statuses})
        raise malformed

    def _deadline(self, work):
        future = self._compute.submit(work)
        try:
            return future.result(self.timeout)
        except futures.TimeoutError:
            raise ServingError("DEADLINE_EXCEEDED", "Timed out waiting for notification")

    def _post(self, verb, name, version, label, body):
        predictor = self.predictor
        document = parse_json_body(body, self.max_json_depth)
        signature_name = document.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise invalid_argument("JSON Value: 'signature_name' must be a string")
        servable = predictor.models.resolve(name, version, label)
        if verb == "classify":
            results = _inference.classify(predictor.run, servable, signature_name,
                                          _inference.examples_from_json(document))
            return _json_response(200, _inference.classification_json(results))
        if verb == "regress":
            values = _inference.regress(predictor.run, servable, signature_name,
                                        _inference.examples_from_json(document))
            return _json_response(200, {"results": values})
        arrays, row_format = request_to_arrays(document, servable.input_dtypes(signature_name))
        servable.check_inputs(signature_name, arrays)
        outputs = predictor.run(servable, signature_name, arrays)
        return _json_response(200, arrays_to_response(outputs, row_format))


# ----------------------------------------------------------------------------
# gRPC front end
# ----------------------------------------------------------------------------


def _abort(context, error):
    context.abort(error.grpc_status, error.message)


def _spec_version(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return version, label


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService`: Predict, Classify, Regress, MultiInference, GetModelMetadata."""

    def __init__(self, predictor):
        self._predictor = predictor

    def Predict(self, request, context):  # noqa: N802 (generated name)
        """Runs a signature on TensorProto inputs."""
        try:
            version, label = _spec_version(request.model_spec)
            try:
                arrays = {
                    name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
                }
            except Exception as error:
                raise invalid_argument(f"Invalid TensorProto input: {error}")
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            servable, outputs = self._predictor.predict(
                request.model_spec.name, version, label, signature_name, arrays,
                tuple(request.output_filter),
            )
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature_name
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response
        except ServingError as error:
            _abort(context, error)
        except Exception as error:
            logger.exception("internal error")
            _abort(context, ServingError("INTERNAL", f"Internal error: {error}"))

    def GetModelMetadata(self, request, context):  # noqa: N802 (generated name)
        """Returns the SignatureDefMap, as TF Serving does."""
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise invalid_argument(
                    "Metadata field signature_def is the only one supported, got "
                    f"{list(request.metadata_field)}"
                )
            version, label = _spec_version(request.model_spec)
            servable = self._predictor.models.resolve(request.model_spec.name, version, label)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(_signature_def_map(servable))
            return response
        except ServingError as error:
            _abort(context, error)


    def _examples_call(self, request, context, method):
        try:
            version, label = _spec_version(request.model_spec)
            servable = self._predictor.models.resolve(request.model_spec.name, version, label)
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            serialized = _inference.examples_from_input(request.input)
            run = _inference.classify if method == _inference.CLASSIFY_METHOD else _inference.regress
            return servable, signature_name, run(self._predictor.run, servable, signature_name, serialized)
        except ServingError as error:
            _abort(context, error)
        except Exception as error:
            logger.exception("internal error")
            _abort(context, ServingError("INTERNAL", f"Internal error: {error}"))

    @staticmethod
    def _fill_spec(spec, name, servable, signature_name):
        spec.name = name
        spec.version.value = servable.version
        spec.signature_name = signature_name

    def Classify(self, request, context):  # noqa: N802 (generated name)
        """Runs a classification signature on `tf.Example`s."""
        servable, signature_name, results = self._examples_call(request, context, _inference.CLASSIFY_METHOD)
        response = classification_pb2.ClassificationResponse()
        self._fill_spec(response.model_spec, request.model_spec.name, servable, signature_name)
        response.result.CopyFrom(_inference.classification_result(results))
        return response

    def Regress(self, request, context):  # noqa: N802 (generated name)
        """Runs a regression signature on `tf.Example`s."""
        servable, signature_name, values = self._examples_call(request, context, _inference.REGRESS_METHOD)
        response = regression_pb2.RegressionResponse()
        self._fill_spec(response.model_spec, request.model_spec.name, servable, signature_name)
        response.result.CopyFrom(_inference.regression_result(values))
        return response

    def MultiInference(self, request, context):  # noqa: N802 (generated name)
        """Runs several classify/regress tasks of one model on the same `tf.Example`s."""
        try:
            tasks = list(request.tasks)
            if not tasks:
                raise invalid_argument("Tasks is empty")
            names = {task.model_spec.name for task in tasks}
            if len(names) != 1:
                raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            signatures = [task.model_spec.signature_name or DEFAULT_SIGNATURE for task in tasks]
            if len(set(signatures)) != len(signatures):
                raise invalid_argument("Duplicate evaluation of signature: " + ", ".join(signatures))
            serialized = _inference.examples_from_input(request.input)
            response = inference_pb2.MultiInferenceResponse()
            for task, signature_name in zip(tasks, signatures):
                method = _inference.method_of(task.method_name)
                version, label = _spec_version(task.model_spec)
                servable = self._predictor.models.resolve(task.model_spec.name, version, label)
                result = response.results.add()
                self._fill_spec(result.model_spec, task.model_spec.name, servable, signature_name)
                if method == _inference.CLASSIFY_METHOD:
                    result.classification_result.CopyFrom(_inference.classification_result(
                        _inference.classify(self._predictor.run, servable, signature_name, serialized)))
                else:
                    result.regression_result.CopyFrom(_inference.regression_result(
                        _inference.regress(self._predictor.run, servable, signature_name, serialized)))
            return response
        except ServingError as error:
            _abort(context, error)
        except Exception as error:
            logger.exception("internal error")
            _abort(context, ServingError("INTERNAL", f"Internal error: {error}"))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus."""

    def __init__(self, predictor):
        self._predictor = predictor

    def GetModelStatus(self, request, context):  # noqa: N802 (generated name)
        """Returns the version states of a model."""
        try:
            version, label = _spec_version(request.model_spec)
            statuses = self._predictor.models.status(request.model_spec.name, version, label)
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in statuses:
                status = response.model_version_status.add()
                status.version = int(entry["version"])
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value(
                    entry["state"]
                )
                code = entry["status"]["error_code"]
                status.status.error_code = _ERROR_CODE_NUMBERS.get(code, 2)
                status.status.error_message = entry["status"]["error_message"]
            return response
        except ServingError as error:
            _abort(context, error)


# Canonical code name -> number, for ModelVersionStatus.status.error_code.
_ERROR_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def _flag_bool(value):
    """`true`/`false` (any case, or 1/0) as TF Serving's boolean flags take them."""
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_args(argv=None):
    """Parses `tensorflow_model_server`-style flags.

    Args:
        argv: list of str or None. The arguments (default: `sys.argv[1:]`).
    """
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="TF Serving-compatible development server (REST + gRPC).",
    )
    parser.add_argument("--port", type=int, default=8500,
                        help="gRPC port (0 disables gRPC).")
    parser.add_argument("--rest_api_port", type=int, default=0,
                        help="REST port; 0 disables REST, as in TF Serving.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address the gRPC server binds.")
    parser.add_argument("--rest_api_host", default=None,
                        help="Address the REST server binds (default: --host).")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", default=None)
    parser.add_argument("--model_config_file", default=None,
                        help="Text-format ModelServerConfig (several models).")
    parser.add_argument("--enable_batching", action="store_true")
    parser.add_argument("--batching_parameters_file", default=None)
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="Seconds between version polls; 0: load once.")
    parser.add_argument("--max_num_load_retries", type=int, default=5)
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help="Larger REST bodies get 413.")
    parser.add_argument("--max_json_depth", type=int, default=DEFAULT_MAX_JSON_DEPTH,
                        help="Deeper JSON nesting gets 400.")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                        help="Deadline of each REST request (504 when it passes); 0: none.")
    parser.add_argument("--rest_api_num_threads", type=int, default=16,
                        help="Threads answering REST requests (requests in progress at once).")
    parser.add_argument("--rest_api_header_timeout_in_ms", type=int, default=10000,
                        help="(dev) Time a client has to send its request headers, and the longest "
                             "pause inside a body; TF Serving has none.")
    parser.add_argument("--grpc_max_threads", type=int, default=16)
    parser.add_argument("--xla_cpu_compilation_enabled", nargs="?", const=True, default=False,
                        type=_flag_bool, metavar="{true,false}",
                        help="Enable XLA:CPU JIT (TF Serving's flag; default off): needed by "
                             "`serving.export --precision int8` models, refused without it.")
    parser.add_argument("--log_level", default="INFO")
    args = parser.parse_args(argv)
    if (args.model_config_file is None) == (args.model_base_path is None):
        parser.error("give exactly one of --model_base_path or --model_config_file")
    if args.batching_parameters_file and not args.enable_batching:
        parser.error("--batching_parameters_file needs --enable_batching")
    if not 1 <= args.max_json_depth <= 512:
        parser.error("--max_json_depth must be between 1 and 512")
    if args.port == 0 and args.rest_api_port == 0:
        parser.error("both --port and --rest_api_port are 0: nothing to serve")
    return args


def model_specs_from_args(args):
    """Returns the ModelSpecs the flags describe.

    Args:
        args: argparse.Namespace. Parsed flags.
    """
    if args.model_config_file:
        return parse_model_config_file(args.model_config_file)
    return [ModelSpec(name=args.model_name,
                      base_path=os.path.abspath(args.model_base_path))]


def main(argv=None):
    """Runs the server until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    specs = model_specs_from_args(args)
    batching = (
        parse_batching_parameters(args.batching_parameters_file)
        if args.enable_batching else None
    )
    predictor = Predictor(specs, batching, args.max_num_load_retries, args.xla_cpu_compilation_enabled)
    try:
        grpc_server, rest_server = _bind(args, predictor)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    predictor.models.start(args.file_system_poll_wait_seconds)
    try:
        predictor.models.check_version_labels()
    except ServingError as error:
        print(f"error: {error.message}", file=sys.stderr)
        predictor.stop()
        return 1

    stop_event = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop_event.set())

    if grpc_server is not None:
        grpc_server.start()
        logger.info("Running gRPC ModelServer at %s:%d ...", args.host, args.port)
    if rest_server is not None:
        threading.Thread(target=rest_server.serve_forever, name="rest", daemon=True).start()
        rest_host, rest_port = rest_server.server_address[:2]
        logger.info("Exporting HTTP/REST API at:%s:%d ...", rest_host, rest_port)
        for spec in specs:
            logger.info("  http://%s:%d/v1/models/%s[:predict|:classify|:regress|/metadata]",
                        rest_host, rest_port, spec.name)
    if batching is not None:
        logger.info("Batching enabled: %s", batching)

    stop_event.wait()
    logger.info("Shutting down")
    if rest_server is not None:
        rest_server.shutdown()  # answers the requests in progress first
    if grpc_server is not None:
        grpc_server.stop(grace=10).wait()
    predictor.stop()
    return 0


def _bind(args, predictor):
    """Binds the gRPC and REST ports (before any model loads); a clash raises OSError."""
    grpc_server = rest_server = None
    if args.port:
        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads),
            options=[
                # TF Serving sets no practical gRPC message limit.
                ("grpc.max_receive_message_length", 2**31 - 1),
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared one
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(predictor), grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(predictor), grpc_server)
        try:
            bound = grpc_server.add_insecure_port(f"{args.host}:{args.port}")
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(f"cannot bind the gRPC port --port={args.port} on {args.host} (in use?)")
    if args.rest_api_port:
        rest_host = args.rest_api_host or args.host
        api = RestApi(predictor, args.max_json_depth, args.rest_api_timeout_in_ms, args.rest_api_num_threads)
        try:
            rest_server = HttpServer((rest_host, args.rest_api_port), api, args.max_body_bytes,
                                     header_timeout=args.rest_api_header_timeout_in_ms / 1000.0,
                                     max_workers=args.rest_api_num_threads)
        except OSError as error:
            if grpc_server is not None:
                grpc_server.stop(0)
            raise OSError(f"cannot bind the REST port --rest_api_port={args.rest_api_port} on {rest_host}: "
                          f"{error.strerror}")
    return grpc_server, rest_server


if __name__ == "__main__":
    exit_code = main()
    # A graph run abandoned at its deadline (504) may still be busy on a pool thread; the
    # interpreter would wait for it at exit. Every answer is sent by now: leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
