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
import http.server
import json
import logging
import os
import re
import signal
import sys
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving._batching import DynamicBatcher
from serving._config import (
    ModelSpec,
    parse_batching_parameters,
    parse_model_config_file,
)
from serving._errors import ServingError, invalid_argument
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

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
)
_GET_PATH = re.compile(_MODEL_PATH.pattern + r"(?P<metadata>/metadata)?/?$")
_POST_PATH = re.compile(_MODEL_PATH.pattern + r":(?P<method>predict|classify|regress)$")


class RestHandler(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST API on top of a `Predictor` (set on the server)."""

    protocol_version = "HTTP/1.1"  # keep-alive for load tests
    # Headers and body go out in separate writes; without TCP_NODELAY,
    # Nagle plus delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "keras-bert-serving/0.1"
    timeout = 60  # seconds a connection may idle mid-request (slow clients)

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        logger.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, status, body, close=False):
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def _send_error(self, error, close=False):
        self._send_json(error.http_status, {"error": error.message}, close=close)

    def _dispatch(self, work):
        try:
            status, body = work()
            self._send_json(status, body)
        except ServingError as error:
            self._send_error(error)
        except Exception as error:  # never let a request take the server down
            logger.exception("internal error")
            self._send_error(ServingError("INTERNAL", f"Internal error: {error}"))

    def do_GET(self):  # noqa: N802 (stdlib name)
        """Model status and metadata."""
        match = _GET_PATH.match(self.path.split("?", 1)[0])
        if match is None:
            self._send_json(404, {"error": f"Malformed request: GET {self.path}"})
            return
        predictor = self.server.predictor
        version = match["version"]
        version = int(version) if version is not None else None

        def work():
            if match["metadata"]:
                return 200, predictor.metadata_dict(match["name"], version, match["label"])
            statuses = predictor.models.status(match["name"], version, match["label"])
            return 200, {"model_version_status": statuses}

        self._dispatch(work)

    def do_POST(self):  # noqa: N802 (stdlib name)
        """`:predict` (and a clear error for `:classify` / `:regress`)."""
        match = _POST_PATH.match(self.path.split("?", 1)[0])
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
            if body is None:
                return
            length = len(body)
        else:
            body = None
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
        if length < 0:
            self._send_json(400, {"error": "Invalid Content-Length"}, close=True)
            return
        if length > self.server.max_body_bytes:
            # Drain a moderately large body so the client can read the answer
            # (closing with unread data resets the connection); drop huge ones.
            if length <= 16 * self.server.max_body_bytes:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._send_json(
                413,
                {"error": f"Request body of {length} bytes exceeds the limit of "
                          f"{self.server.max_body_bytes} bytes (--max_body_bytes)"},
                close=True,
            )
            return
        if body is None:
            body = self.rfile.read(length) if length else b""
        if match is None:
            self._send_json(404, {"error": f"Malformed request: POST {self.path}"})
            return
        if match["method"] != "predict":
            self._send_json(
                501, {"error": f":{match['method']} is not supported by this "
                               "development server; use :predict"})
            return
        version = match["version"]
        version = int(version) if version is not None else None
        self._dispatch(lambda: self._predict(match["name"], version, match["label"], body))

    def _read_chunked(self):
        """Reads a chunked body; answers 400/413 and returns None on failure."""
        chunks, total = [], 0
        try:
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    break
                total += size
                # Past the limit, keep draining (so the client can read the
                # 413) but stop storing; give up on huge bodies.
                if total > 16 * self.server.max_body_bytes:
                    break
                remaining = size
                while remaining > 0:  # in pieces: a chunk may announce any size
                    piece = self.rfile.read(min(remaining, 1 << 16))
                    if not piece:
                        raise ValueError("truncated chunk")
                    remaining -= len(piece)
                    if total <= self.server.max_body_bytes:
                        chunks.append(piece)
                self.rfile.readline(1024)  # the CRLF after each chunk
        except ValueError:
            self._send_json(400, {"error": "Malformed chunked request body"}, close=True)
            return None
        if total > self.server.max_body_bytes:
            self._send_json(
                413, {"error": f"Request body exceeds the limit of "
                               f"{self.server.max_body_bytes} bytes (--max_body_bytes)"},
                close=True)
            return None
        return b"".join(chunks)

    def _predict(self, name, version, label, body):
        predictor = self.server.predictor
        document = parse_json_body(body, self.server.max_json_depth)
        signature_name = document.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise invalid_argument("JSON Value: 'signature_name' must be a string")
        servable = predictor.models.resolve(name, version, label)
        arrays, row_format = request_to_arrays(
            document, servable.input_dtypes(signature_name)
        )
        servable.check_inputs(signature_name, arrays)
        outputs = predictor.run(servable, signature_name, arrays)
        return 200, arrays_to_response(outputs, row_format)


class RestServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server carrying the predictor and the request limits."""

    daemon_threads = True
    allow_reuse_address = True
    # The default listen backlog (5) drops SYNs under a burst of new
    # connections, which costs clients a 1 s retransmit.
    request_queue_size = 128

    def __init__(self, address, predictor, max_body_bytes, max_json_depth):
        super().__init__(address, RestHandler)
        self.predictor = predictor
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth


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
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata."""

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
                        help="Idle timeout of a REST connection mid-request.")
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
    predictor.models.start(args.file_system_poll_wait_seconds)

    stop_event = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop_event.set())

    grpc_server = None
    if args.port:
        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads),
            options=[
                # TF Serving sets no practical gRPC message limit.
                ("grpc.max_receive_message_length", 2**31 - 1),
                ("grpc.max_send_message_length", 2**31 - 1),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(predictor), grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(predictor), grpc_server)
        if not grpc_server.add_insecure_port(f"{args.host}:{args.port}"):
            raise SystemExit(f"cannot bind gRPC port {args.host}:{args.port}")
        grpc_server.start()
        logger.info("Running gRPC ModelServer at %s:%d ...", args.host, args.port)

    rest_server = None
    if args.rest_api_port:
        rest_host = args.rest_api_host or args.host
        rest_server = RestServer((rest_host, args.rest_api_port), predictor,
                                 args.max_body_bytes, args.max_json_depth)
        RestHandler.timeout = max(args.rest_api_timeout_in_ms / 1000.0, 1.0)
        threading.Thread(target=rest_server.serve_forever, name="rest",
                         daemon=True).start()
        logger.info("Exporting HTTP/REST API at:%s:%d ...", rest_host, args.rest_api_port)
        for spec in specs:
            logger.info("  http://%s:%d/v1/models/%s[:predict|/metadata]",
                        rest_host, args.rest_api_port, spec.name)
    if batching is not None:
        logger.info("Batching enabled: %s", batching)

    stop_event.wait()
    logger.info("Shutting down")
    if rest_server is not None:
        rest_server.shutdown()
        rest_server.server_close()
    if grpc_server is not None:
        grpc_server.stop(grace=2).wait()
    predictor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
