"""REST and gRPC client for TF Serving (and `serving.server`), with a load test.

Importable:

```python
from serving.client import rest_predict, grpc_predict
rest_predict("http://127.0.0.1:8501", "bert", inputs={"text": ["great movie"]})
# -> {"outputs": {...}}
grpc_predict("127.0.0.1:8500", "bert", {"text": ["great movie"]})
# -> {"label": array([b"positive"], dtype=object), ...}
```

Command line:

```
python -m serving.client --rest http://127.0.0.1:8501 --model bert --text "great movie"
python -m serving.client --grpc 127.0.0.1:8500 --model bert --text "a" --text "b"
python -m serving.client --rest http://127.0.0.1:8501 --model bert \
    --inputs '{"token_ids": [[101, 102]]}' --signature serve_ids
python -m serving.client --grpc 127.0.0.1:8500 --model bert --text "hi" \
    --load 500 --concurrency 16
```
"""

import argparse
import concurrent.futures
import http.client
import json
import sys
import threading
import time
import urllib.parse

import numpy as np


class ClientError(Exception):
    """A request that the server answered with an error.

    Args:
        status: int or grpc.StatusCode. HTTP status or gRPC code.
        message: str. The server's error message.
    """

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------
# REST
# ----------------------------------------------------------------------------

_local = threading.local()


def _connection(url, timeout):
    """A keep-alive HTTP connection for `url`, one per thread."""
    connections = getattr(_local, "connections", None)
    if connections is None:
        connections = _local.connections = {}
    key = (url, timeout)
    if key not in connections:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http":
            raise ValueError(f"only http:// URLs are supported, got {url!r}")
        connections[key] = http.client.HTTPConnection(
            parsed.hostname, parsed.port or 80, timeout=timeout
        )
    return connections[key]


def rest_request(url, method, path, body=None, timeout=30.0):
    """Sends one REST request and returns `(http_status, parsed JSON body)`.

    Args:
        url: str. Server root, e.g. `http://127.0.0.1:8501`.
        method: str. `GET` or `POST`.
        path: str. E.g. `/v1/models/bert:predict`.
        body: bytes, str, dict or None. A dict is sent as JSON.
        timeout: float. Seconds.
    """
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    for attempt in range(2):
        connection = _connection(url, timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
            break
        except (http.client.HTTPException, ConnectionError):
            # A kept-alive connection the server closed: reconnect once.
            connection.close()
            _local.connections.pop((url, timeout), None)
            if attempt:
                raise
    try:
        parsed = json.loads(payload) if payload else {}
    except ValueError:
        parsed = {"error": payload.decode("utf-8", "replace")}
    return response.status, parsed


def _model_path(model, version=None, label=None):
    path = f"/v1/models/{urllib.parse.quote(model)}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label:
        path += f"/labels/{urllib.parse.quote(label)}"
    return path


def _checked(status, body):
    if status != 200:
        raise ClientError(status, body.get("error", json.dumps(body)))
    return body


def _jsonable(value):
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind == "S":
            return [_jsonable(item) for item in value.tolist()]
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def rest_predict(url, model, inputs=None, instances=None, signature_name=None,
                 version=None, label=None, timeout=30.0):
    """Calls `POST /v1/models/MODEL[/versions/V]:predict` and returns the JSON body.

    Args:
        url: str. Server root, e.g. `http://127.0.0.1:8501`.
        model: str. Model name.
        inputs: dict, list or None. Columnar inputs (answer: `outputs`).
        instances: list or None. Row inputs (answer: `predictions`).
        signature_name: str or None. Default `serving_default`.
        version: int or None. A specific version.
        label: str or None. A version label.
        timeout: float. Seconds.

    Raises:
        ClientError: the server answered with an error status.
    """
    if (inputs is None) == (instances is None):
        raise ValueError("give exactly one of inputs or instances")
    body = {"inputs": _jsonable(inputs)} if inputs is not None else {
        "instances": _jsonable(instances)}
    if signature_name:
        body["signature_name"] = signature_name
    path = _model_path(model, version, label) + ":predict"
    return _checked(*rest_request(url, "POST", path, body, timeout))


def rest_status(url, model, version=None, label=None, timeout=30.0):
    """Returns `GET /v1/models/MODEL[...]` (`model_version_status`) as a dict."""
    return _checked(*rest_request(url, "GET", _model_path(model, version, label),
                                  timeout=timeout))


def rest_metadata(url, model, version=None, label=None, timeout=30.0):
    """Returns `GET /v1/models/MODEL[...]/metadata` as a dict."""
    return _checked(*rest_request(
        url, "GET", _model_path(model, version, label) + "/metadata", timeout=timeout))


# ----------------------------------------------------------------------------
# gRPC
# ----------------------------------------------------------------------------

_channels = {}
_channels_lock = threading.Lock()


def _stub(target, kind):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    with _channels_lock:
        if target not in _channels:
            _channels[target] = grpc.insecure_channel(target, options=[
                ("grpc.max_receive_message_length", 2**31 - 1),
                ("grpc.max_send_message_length", 2**31 - 1),
            ])
        channel = _channels[target]
    if kind == "model":
        return model_service_pb2_grpc.ModelServiceStub(channel)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _fill_spec(spec, model, signature_name=None, version=None, label=None):
    spec.name = model
    if signature_name:
        spec.signature_name = signature_name
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label


def _grpc_call(method, request, timeout):
    import grpc

    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise ClientError(error.code(), error.details())


def grpc_predict(target, model, inputs, signature_name=None, version=None,
                 label=None, output_filter=(), timeout=30.0):
    """Calls `PredictionService/Predict` and returns `{output name: np.ndarray}`.

    Args:
        target: str. `host:port` of the gRPC server.
        model: str. Model name.
        inputs: dict of str to array-like. Strings may be `str` or `bytes`.
        signature_name: str or None. Default `serving_default`.
        version: int or None. A specific version.
        label: str or None. A version label.
        output_filter: sequence of str. Outputs to return (all if empty).
        timeout: float. Seconds.

    Raises:
        ClientError: the server answered with an error status.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    _fill_spec(request.model_spec, model, signature_name, version, label)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    response = _grpc_call(_stub(target, "predict").Predict, request, timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def grpc_status(target, model, version=None, label=None, timeout=30.0):
    """Calls `ModelService/GetModelStatus`; returns the response proto."""
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    _fill_spec(request.model_spec, model, None, version, label)
    return _grpc_call(_stub(target, "model").GetModelStatus, request, timeout)


def grpc_metadata(target, model, version=None, label=None, timeout=30.0):
    """Calls `PredictionService/GetModelMetadata`; returns a `SignatureDefMap` proto."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    _fill_spec(request.model_spec, model, None, version, label)
    request.metadata_field.append("signature_def")
    response = _grpc_call(_stub(target, "predict").GetModelMetadata, request, timeout)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return signature_map


# ----------------------------------------------------------------------------
# Load test
# ----------------------------------------------------------------------------


def load_test(send, num_requests, concurrency):
    """Calls `send()` `num_requests` times from `concurrency` threads.

    Args:
        send: callable with no arguments; one request.
        num_requests: int. Total requests.
        concurrency: int. Requests in flight at once.

    Returns:
        A dict with `requests`, `errors`, `first_error`, `seconds`,
        `throughput` (requests/s) and `p50_ms`, `p90_ms`, `p99_ms`.
    """
    latencies = []
    errors = []
    lock = threading.Lock()
    counter = iter(range(num_requests))

    def worker():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            start = time.perf_counter()
            try:
                send()
            except Exception as error:  # counted and reported, not raised
                with lock:
                    errors.append(repr(error))
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - start
    millis = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    return {
        "requests": num_requests,
        "concurrency": concurrency,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 3),
        "throughput": round(len(latencies) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(float(np.percentile(millis, 50)), 3),
        "p90_ms": round(float(np.percentile(millis, 90)), 3),
        "p99_ms": round(float(np.percentile(millis, 99)), 3),
    }


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m serving.client",
        description="One-off requests and a small load test against TF Serving.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rest", help="REST root, e.g. http://127.0.0.1:8501")
    where.add_argument("--grpc", help="gRPC target, e.g. 127.0.0.1:8500")
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--label", default=None)
    parser.add_argument("--signature", default=None, help="default: serving_default")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--text", action="append",
                      help="A raw text (repeat for a batch); sent as --input_name.")
    data.add_argument("--inputs", help="Columnar inputs as JSON, e.g. '{\"text\": [\"hi\"]}'.")
    data.add_argument("--instances", help="Row inputs as JSON (REST only).")
    parser.add_argument("--input_name", default="text")
    parser.add_argument("--status", action="store_true", help="Print the model status.")
    parser.add_argument("--metadata", action="store_true", help="Print the metadata.")
    parser.add_argument("--load", type=int, default=0, help="Send N requests as a load test.")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser.parse_args(argv)


def _print_json(value):
    print(json.dumps(value, indent=2, default=_jsonable))


def main(argv=None):
    """Runs the command line client; returns the exit status."""
    args = _parse_args(argv)
    spec = dict(version=args.version, label=args.label)
    try:
        if args.status or args.metadata:
            if args.rest:
                fetch = rest_metadata if args.metadata else rest_status
                _print_json(fetch(args.rest, args.model, timeout=args.timeout, **spec))
            else:
                from google.protobuf import json_format

                fetch = grpc_metadata if args.metadata else grpc_status
                proto = fetch(args.grpc, args.model, timeout=args.timeout, **spec)
                print(json_format.MessageToJson(
                    proto, preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True))
            return 0
        if args.text:
            inputs = {args.input_name: args.text}
        elif args.inputs:
            inputs = json.loads(args.inputs)
        elif args.instances:
            inputs = None
        else:
            raise SystemExit("give --text, --inputs or --instances (or --status/--metadata)")
        instances = json.loads(args.instances) if args.instances else None
        if args.grpc and instances is not None:
            raise SystemExit("--instances is REST only; use --inputs with --grpc")

        def send():
            if args.rest:
                return rest_predict(args.rest, args.model, inputs=inputs, instances=instances,
                                    signature_name=args.signature, timeout=args.timeout, **spec)
            return grpc_predict(args.grpc, args.model, inputs, args.signature,
                                timeout=args.timeout, **spec)

        endpoint = args.rest or args.grpc
        if args.load:
            report = load_test(send, args.load, args.concurrency)
            report["endpoint"] = endpoint
            _print_json(report)
            return 1 if report["errors"] else 0
        result = send()
        print(f"# {endpoint} model={args.model}", file=sys.stderr)
        _print_json(result)
        return 0
    except ClientError as error:
        print(f"error {error.status}: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
