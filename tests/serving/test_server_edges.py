"""`python -m serving.server` at the edges, as TF Serving's source answers them.

One real server (a `--model_config_file` with six models, batching with
`max_batch_size` 4, a 3 s `--rest_api_timeout_in_ms`, a 1.5 s header deadline)
on loopback ports; raw sockets for HTTP framing and slow clients; two short
extra processes for start-up failures. Status codes and messages follow
`tensorflow_serving/model_servers/http_rest_api_handler.cc` and friends (see
`serving/README.md`, "Edge cases").
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

from keras_bert.export.writer import set_method_name
from serving import client
from serving.testing import REPO_ROOT, ServerProcess, free_port, write_tiny_model

MAX_BODY_BYTES = 100_000
CLASS_NAMES = ["neg", "pos"]


class _ExampleModel(tf.Module):
    """Classification and regression signatures on tf.Examples with a `text` feature."""

    def _lengths(self, inputs):
        parsed = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})
        return tf.cast(tf.strings.length(parsed["text"]), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        length = self._lengths(inputs)
        positive = length / (length + 1.0)
        scores = tf.stack([1.0 - positive, positive], axis=1)
        return {"classes": tf.broadcast_to(tf.constant(CLASS_NAMES), tf.shape(scores)), "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._lengths(inputs) * 0.5}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict(self, text):
        return {"length": tf.cast(tf.strings.length(text), tf.float32)}


class _SpinModel(tf.Module):
    """`n` iterations of a graph loop: a request that takes as long as asked."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n")])
    def spin(self, n):
        _, value = tf.while_loop(lambda i, x: i < n, lambda i, x: (i + 1, x * 1.0000001 + 1e-9),
                                 [tf.constant(0), tf.constant(1.0)])
        return {"value": tf.reshape(value, [1])}


class _PyFuncModel(tf.Module):
    """A graph with EagerPyFunc, which tensorflow_model_server cannot run."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def double(self, x):
        return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}


def _save(module, path, signatures, methods=None):
    tf.saved_model.save(module, path, signatures=signatures)
    for key, method in (methods or {}).items():
        set_method_name(path, key, method)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    models = root / "models"
    write_tiny_model(str(models / "tiny"), 1, warmup=False)
    shutil.copytree(models / "tiny", models / "gone")
    shutil.copytree(models / "tiny", models / "other")
    shutil.copytree(models / "tiny", models / "odd")
    for name in ("²", "٢", "99999999999999999999", "+3", "-4", " 5"):  # not versions for SimpleAtoi
        shutil.copytree(models / "tiny" / "1", models / "odd" / name)
    examples = _ExampleModel()
    _save(examples, str(models / "ex" / "1"),
          {"classification": examples.classify, "regression": examples.regress, "serving_default": examples.predict},
          {"classification": "tensorflow/serving/classify", "regression": "tensorflow/serving/regress"})
    spin = _SpinModel()
    _save(spin, str(models / "spin" / "1"), {"serving_default": spin.spin})
    pyfunc = _PyFuncModel()
    _save(pyfunc, str(models / "pyfunc" / "1"), {"serving_default": pyfunc.double})
    names = ["tiny", "gone", "other", "odd", "ex", "spin", "pyfunc"]
    config = "model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{models / name}" model_platform: "tensorflow"'
        + (' version_labels { key: "stable" value: 1 }' if name == "tiny" else "") + " }\n"
        for name in names) + "}\n"
    (root / "models.config").write_text(config)
    (root / "batching.txt").write_text(
        "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 1000 }\n"
        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n")
    process = ServerProcess(
        ["--model_config_file", str(root / "models.config"), "--file_system_poll_wait_seconds", "0.3",
         "--max_body_bytes", str(MAX_BODY_BYTES), "--enable_batching",
         "--batching_parameters_file", str(root / "batching.txt"),
         "--rest_api_timeout_in_ms", "3000", "--rest_api_header_timeout_in_ms", "1500",
         "--max_num_load_retries", "0"],
        str(root / "server.log"))
    process.root = root
    try:
        for name in names[:-1]:
            process.wait_until_available(name)
        yield process
    finally:
        process.stop()


def _raw(server, data, read_timeout=10.0, responses=1):
    """Sends raw bytes on a new connection; returns the bytes of `responses` answers (or until it closes)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if _complete_responses(b"".join(chunks)) >= responses:
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def _complete_responses(data):
    """How many complete responses (headers + Content-Length body) `data` holds."""
    count = 0
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return count
        length = int(re.search(rb"Content-Length: (\d+)", data[:end]).group(1))
        if len(data) < end + 4 + length:
            return count
        data = data[end + 4 + length:]
        count += 1


def _status(response):
    return int(response.split(b" ", 2)[1])


def _request(server, method, path, body=None, headers=None):
    """One request on its own connection; returns `(status, headers, raw body)`."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _error(body):
    return json.loads(body)["error"]


_TEXT = {"inputs": {"text": ["ok"]}}


# ----------------------------------------------------------------------------
# Paths, methods, versions, labels, URL decoding
# ----------------------------------------------------------------------------

MALFORMED = [
    ("POST", "/v1/models/tiny/versions/abc:predict"),
    ("POST", "/v1/models/tiny/versions/-1:predict"),
    ("POST", "/v1/models/tiny/versions/\u0662:predict".encode("utf-8").decode("latin-1")),
    ("GET", "/v1/models/tiny:predict"),
    ("POST", "/v1/models/tiny/metadata"),
    ("POST", "/v1/models/tiny:PREDICT"),
    ("POST", "/v1/models/tiny:explain"),
    ("POST", "/v1/models/tiny:predict?debug=1"),
    ("GET", "/v1/models/tiny/versions/1/extra"),
    ("PUT", "/v1/models/tiny"),
    ("DELETE", "/v1/models/tiny"),
    ("PATCH", "/v1/models/tiny:predict"),
]


@pytest.mark.parametrize("method,path", MALFORMED[:2] + MALFORMED[3:])
def test_malformed_requests_get_400_json(server, method, path):
    status, headers, body = _request(server, method, path, _TEXT if method != "GET" else None)
    assert status == 400 and headers["Content-Type"] == "application/json", body
    assert body.startswith(b'{ "error": ') and _error(body) == f"Malformed request: {method} {path}"


def test_non_ascii_digit_version_in_path_is_refused(server):
    path = "/v1/models/tiny/versions/%D9%A2:predict"  # not \d+ for RE2: malformed, not decoded
    status, _, body = _request(server, "POST", path, _TEXT)
    assert status == 400 and _error(body) == f"Malformed request: POST {path}"


def test_routing_outside_v1_methods_and_names(server):
    status, headers, body = _request(server, "GET", "/v2/models/tiny")
    assert status == 404 and headers["Content-Type"] == "text/html" and b"<H1>Not Found</H1>" in body
    status, headers, body = _request(server, "TRACE", "/v1/models/tiny")
    assert status == 501 and b"Not Implemented" in body
    status, _, body = _request(server, "GET", "/v1/models")
    assert status == 400 and _error(body) == "Missing model name in request."
    status, _, body = _request(server, "GET", "/v1/models/tiny/versions/99999999999999999999")
    assert status == 400 and body == b""  # ParseModelInfo's early return: no JSON body
    status, _, body = _request(server, "GET", "/v1/models/tiny/labels/canary")
    assert status == 400 and _error(body) == "Unrecognized servable version label: canary"
    status, _, body = _request(server, "GET", "/v1/models/tiny?verbose=1")  # the query joins the name
    assert status == 404 and _error(body) == "Could not find any versions of model tiny?verbose=1"
    status, _, body = _request(server, "HEAD", "/v1/models/tiny")
    assert status == 400 and body == b""


def test_case_insensitive_paths_and_case_sensitive_verbs(server):
    status, _, body = _request(server, "POST", "/V1/MODELS/tiny/VERSIONS/1:predict", _TEXT)
    assert status == 200 and json.loads(body)["outputs"]["label"] == ["short"]
    status, _, body = _request(server, "GET", "/v1/Models/tiny/Labels/stable")
    assert status == 200 and json.loads(body)["model_version_status"][0]["version"] == "1"
    # /METADATA matches the regex but is compared case-sensitively: a status request.
    status, _, body = _request(server, "GET", "/v1/models/tiny/METADATA")
    assert status == 200 and set(json.loads(body)) == {"model_version_status"}
    status, _, body = _request(server, "GET", "/v1/models/tiny/metadata")
    assert status == 200 and "metadata" in json.loads(body)
    status, _, body = _request(server, "POST", "/v1/models/TINY:predict", _TEXT)  # names are exact
    assert status == 404 and _error(body) == "Servable not found for request: Latest(TINY)"


def test_model_names_and_labels_are_url_decoded(server):
    status, _, body = _request(server, "POST", "/v1/models/ti%6Ey/labels/st%61ble:predict", _TEXT)
    assert status == 200, body
    status, _, body = _request(server, "POST", "/v1/models/a%2Fb%3Ac:predict", _TEXT)
    assert status == 404 and _error(body) == "Servable not found for request: Latest(a/b:c)"


def test_cors_preflight(server):
    status, _, body = _request(server, "OPTIONS", "/v1/models/tiny:predict", headers={"Origin": "https://x.org"})
    assert status == 200 and body == b""
    status, _, body = _request(server, "OPTIONS", "/v1/models/tiny:predict")
    assert status == 400 and body == b""


def test_server_header_names_no_version(server):
    _, headers, _ = _request(server, "GET", "/v1/models/tiny")
    assert headers["Server"] == "keras-bert-serving"


# ----------------------------------------------------------------------------
# JSON and encoding errors: 400, never 500
# ----------------------------------------------------------------------------


def test_surrogates_are_400_or_bytes_as_rapidjson(server):
    body = b'{"inputs": {"text": ["\\ud800"]}}'
    status, _, response = _request(server, "POST", "/v1/models/tiny:predict", body)
    assert status == 400 and _error(response) == (
        "JSON Parse error: The surrogate pair in string is invalid. at offset: 22")  # the backslash
    # A lone low surrogate: rapidjson v1.1.0 keeps it as 3 bytes (ED B0 80).
    status, _, response = _request(server, "POST", "/v1/models/ex:predict", b'{"inputs": {"text": ["\\udc00"]}}')
    assert status == 200 and json.loads(response)["outputs"] == [3.0], response
    status, _, response = _request(server, "POST", "/v1/models/tiny:predict",
                                   b'{"inputs": {"text": ["\\ud83d\\ude00 \\\\ud800"]}}')
    assert status == 200, response
    # Bytes that are not UTF-8 reach the graph unchanged (rapidjson does not validate): 2 bytes, 2 "characters".
    status, _, response = _request(server, "POST", "/v1/models/ex:predict", b'{"inputs": {"text": ["\xff\xfe"]}}')
    assert status == 200 and json.loads(response)["outputs"] == [2.0], response


def test_grpc_duplicate_output_filter(server):
    with pytest.raises(client.ClientError) as error:
        client.grpc_predict(server.grpc_target, "tiny", {"text": ["a"]}, output_filter=["label", "label"])
    assert error.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert "duplicate output tensor alias: label" in error.value.message


# ----------------------------------------------------------------------------
# HTTP/1.1 framing (RFC 9112) and the body limit
# ----------------------------------------------------------------------------

_HEAD = b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
_BODY = json.dumps(_TEXT).encode()


def _chunked(*chunks, size=None):
    out = b""
    for chunk in chunks:
        out += (size if size is not None else b"%x" % len(chunk)) + b"\r\n" + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


FRAMING = {
    "negative_chunk_size": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(_BODY, size=b"-1"), 400),
    "0x_chunk_size": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                      + _chunked(_BODY, size=b"0x%x" % len(_BODY)), 400),
    "chunk_without_crlf": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                           + b"%x\r\n" % len(_BODY) + _BODY + b"XX0\r\n\r\n", 400),
    "content_length_underscore": (_HEAD + b"Content-Length: 2_5\r\n\r\n" + _BODY, 400),
    "content_length_plus": (_HEAD + b"Content-Length: +%d\r\n\r\n" % len(_BODY) + _BODY, 400),
    "content_length_conflict": (_HEAD + b"Content-Length: %d\r\nContent-Length: 3\r\n\r\n" % len(_BODY)
                                + _BODY, 400),
    "content_length_and_chunked": (_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   + _chunked(_BODY), 400),
    "unknown_transfer_coding": (_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + _chunked(_BODY), 501),
    "obs_fold": (_HEAD + b"X-A: 1\r\n  folded\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY, 400),
    "space_before_colon": (_HEAD + b"Content-Length : %d\r\n\r\n" % len(_BODY) + _BODY, 400),
    "chunked_over_limit": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                           + _chunked(*[b" " * 4000] * 30), 413),
    "content_length_over_limit": (_HEAD + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), 413),
    "chunked_with_extension_and_trailer": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                                           + b"%x;name=value\r\n" % len(_BODY) + _BODY + b"\r\n0\r\nX-T: 1\r\n\r\n",
                                           200),
    "http_1_0_content_length": (_HEAD.replace(b"1.1", b"1.0") + b"Content-Length: %d\r\n\r\n" % len(_BODY)
                                + _BODY, 200),
}


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_http_framing_is_strict(server, case):
    data, expected = FRAMING[case]
    response = _raw(server, data)
    assert _status(response) == expected, response[:300]
    if expected == 413:
        assert b"exceeds the limit of 100000 bytes" in response


def test_expect_100_continue(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(_HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(_BODY))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(_BODY)
        response = b""
        while not _complete_responses(response):
            response += sock.recv(65536)
    assert _status(response) == 200


def test_pipelined_requests_are_answered_in_order(server):
    one = _HEAD + b"Content-Length: %d\r\n\r\n" % len(_BODY) + _BODY
    status_request = b"GET /v1/models/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = _raw(server, one + one + status_request, responses=3)
    assert _complete_responses(response) == 3
    assert re.findall(rb"HTTP/1.1 (\d+)", response) == [b"200", b"200", b"404"]


def test_slow_clients_hold_no_threads_and_meet_the_header_deadline(server):
    """64 clients that never finish their headers: others are served, threads stay bounded, all are cut."""
    def threads():
        return len(os.listdir(f"/proc/{server.process.pid}/task"))

    before = threads()
    slow = []
    for _ in range(64):
        sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
        sock.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    try:
        started = time.monotonic()
        status, _, body = _request(server, "POST", "/v1/models/tiny:predict", _TEXT)
        assert status == 200, body
        assert threads() - before < 16  # not one thread per connection
        for sock in slow:  # the 1.5 s header deadline closes each of them
            sock.settimeout(max(0.1, started + 8 - time.monotonic()))
            assert sock.recv(100) == b""
        assert time.monotonic() - started < 8
    finally:
        for sock in slow:
            sock.close()


# ----------------------------------------------------------------------------
# Versions, op check, unloading, batching, deadlines
# ----------------------------------------------------------------------------


def test_version_dirs_are_ascii_digits_and_polling_continues(server):
    statuses = client.rest_status(server.rest_url, "odd")["model_version_status"]
    assert [entry["version"] for entry in statuses] == ["1"]
    # A bad entry in `odd` does not stop polling for the other models: a new version appears.
    write_tiny_model(str(server.root / "models" / "other"), 2, warmup=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        versions = {e["version"]: e["state"] for e in client.rest_status(server.rest_url, "other")["model_version_status"]}
        if versions.get("2") == "AVAILABLE":
            break
        time.sleep(0.2)
    assert versions.get("2") == "AVAILABLE", server.log()


def test_model_with_op_outside_tf_serving_list_is_refused(server):
    statuses = client.rest_status(server.rest_url, "pyfunc")["model_version_status"]
    assert statuses[0]["state"] == "END" and statuses[0]["status"]["error_code"] == "NOT_FOUND"
    assert "Op type not registered 'EagerPyFunc'" in statuses[0]["status"]["error_message"]
    status, _, body = _request(server, "POST", "/v1/models/pyfunc:predict", {"inputs": {"x": [1.0]}})
    assert status == 404


def test_removing_every_version_unloads_the_model(server):
    assert _request(server, "POST", "/v1/models/gone:predict", _TEXT)[0] == 200
    shutil.rmtree(server.root / "models" / "gone" / "1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _request(server, "POST", "/v1/models/gone:predict", _TEXT)[0] == 200:
        time.sleep(0.1)
    status, _, body = _request(server, "POST", "/v1/models/gone:predict", _TEXT)
    assert status == 404 and _error(body) == "Servable not found for request: Latest(gone)"
    statuses = client.rest_status(server.rest_url, "gone")["model_version_status"]
    assert [(e["version"], e["state"]) for e in statuses] == [("1", "END")]


def test_batch_larger_than_max_batch_size_is_400(server):
    status, _, body = _request(server, "POST", "/v1/models/tiny:predict", {"inputs": {"text": ["a"] * 5}})
    assert status == 400 and _error(body) == "Task size 5 is larger than maximum input batch size 4"
    with pytest.raises(client.ClientError) as error:
        client.grpc_predict(server.grpc_target, "tiny", {"text": ["a"] * 33})
    assert error.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert "Task size 33 is larger than maximum input batch size 4" in error.value.message
    assert _request(server, "POST", "/v1/models/tiny:predict", {"inputs": {"text": ["a"] * 4}})[0] == 200


def _spin_seconds(server, n):
    started = time.monotonic()
    status, _, body = _request(server, "POST", "/v1/models/spin:predict", {"inputs": {"n": n}})
    assert status == 200, body
    return time.monotonic() - started


@pytest.fixture
def spin_rate(server):
    """Loop iterations per second of the spin model on this (shared) machine, measured just before use."""
    _spin_seconds(server, 1)  # the first run of a function is slower
    n = 50_000
    return n / max(_spin_seconds(server, n), 1e-3)


def test_rest_api_timeout_is_a_per_request_deadline(server, spin_rate):
    started = time.monotonic()
    status, _, body = _request(server, "POST", "/v1/models/spin:predict", {"inputs": {"n": int(spin_rate * 8)}})
    assert status == 504 and _error(body) == "Timed out waiting for notification", body
    assert time.monotonic() - started < 6  # the 3 s deadline, not the 8 s of work
    assert _request(server, "GET", "/v1/models/tiny")[0] == 200


# ----------------------------------------------------------------------------
# Classify, Regress, MultiInference
# ----------------------------------------------------------------------------


def _example(text):
    return tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))}))


def test_rest_classify_and_regress(server):
    body = {"signature_name": "classification", "examples": [{"text": "abc"}, {"text": ""}]}
    status, _, response = _request(server, "POST", "/v1/models/ex:classify", body)
    assert status == 200, response
    assert json.loads(response) == {"results": [[["neg", 0.25], ["pos", 0.75]], [["neg", 1.0], ["pos", 0.0]]]}
    body = {"signature_name": "regression", "context": {"text": "abcd"}, "examples": [{}, {"text": "ab"}]}
    status, _, response = _request(server, "POST", "/v1/models/ex/versions/1:regress", body)
    assert status == 200 and json.loads(response) == {"results": [2.0, 1.0]}, response
    status, _, response = _request(server, "POST", "/v1/models/ex:classify",
                                   {"signature_name": "regression", "examples": [{"text": "a"}]})
    assert status == 400 and _error(response) == ("Expected classification signature method_name to be "
                                                  "tensorflow/serving/classify. Was: tensorflow/serving/regress")
    status, _, response = _request(server, "POST", "/v1/models/ex:regress", {"examples": [{"text": "a"}]})
    assert status == 400 and _error(response) == ("Expected regression signature method_name to be "
                                                  "tensorflow/serving/regress. Was: tensorflow/serving/predict")


def test_grpc_classify_regress_and_multi_inference(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "ex"
        request.model_spec.signature_name = "classification"
        request.input.example_list.examples.extend([_example("abc")])
        response = stub.Classify(request, timeout=30)
        assert response.model_spec.version.value == 1
        assert [(c.label, round(c.score, 6)) for c in response.result.classifications[0].classes] == [
            ("neg", 0.25), ("pos", 0.75)]

        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "ex"
        request.model_spec.signature_name = "regression"
        request.input.example_list_with_context.context.CopyFrom(_example("abcdef"))
        request.input.example_list_with_context.examples.extend([tf.train.Example(), _example("a")])
        response = stub.Regress(request, timeout=30)
        assert [r.value for r in response.result.regressions] == [3.0, 0.5]

        request = inference_pb2.MultiInferenceRequest()
        for signature, method in (("classification", "tensorflow/serving/classify"),
                                  ("regression", "tensorflow/serving/regress")):
            task = request.tasks.add()
            task.model_spec.name = "ex"
            task.model_spec.signature_name = signature
            task.method_name = method
        request.input.example_list.examples.extend([_example("abc"), _example("x")])
        response = stub.MultiInference(request, timeout=30)
        assert len(response.results[0].classification_result.classifications) == 2
        assert [r.value for r in response.results[1].regression_result.regressions] == [1.5, 0.5]

        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "ex"
        request.input.example_list.examples.extend([_example("abc")])
        with pytest.raises(grpc.RpcError) as error:
            stub.Classify(request, timeout=30)  # serving_default is a predict signature
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Was: tensorflow/serving/predict" in error.value.details()


# ----------------------------------------------------------------------------
# Start-up failures and SIGTERM (last: it stops the server)
# ----------------------------------------------------------------------------


def _start_failing(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "serving.server", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_port_clash_and_label_on_unloaded_version_are_one_line_errors(server, tmp_path):
    same = free_port()
    clash_rest = _start_failing(["--port", str(same), "--rest_api_port", str(same),
                                 "--model_name", "tiny", "--model_base_path", str(server.root / "models" / "tiny")])
    config = tmp_path / "labels.config"
    config.write_text(f'model_config_list {{ config {{ name: "tiny" base_path: "{server.root / "models" / "tiny"}" '
                      'model_platform: "tensorflow" model_version_policy { all {} } '
                      'version_labels { key: "canary" value: 7 } } }')
    labels = _start_failing(["--port", "0", "--rest_api_port", str(free_port()), "--model_config_file", str(config)])
    for process, fragment in [
        (clash_rest, "error: cannot bind the REST port --rest_api_port="),
        (labels, "error: Request to assign label canary to version 7 of model tiny, which is not currently "
                 "available. Labels can only point to AVAILABLE versions"),
    ]:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr
        assert "Traceback" not in stderr
        assert any(line.startswith(fragment) for line in stderr.splitlines()), stderr


def test_sigterm_finishes_in_flight_requests_then_exits_0(server, spin_rate):
    result = {}

    def slow_request():
        result["status"], _, result["body"] = _request(server, "POST", "/v1/models/spin:predict",
                                                       {"inputs": {"n": int(spin_rate * 1.2)}})

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.4)  # the request is being computed
    server.process.send_signal(signal.SIGTERM)
    worker.join(30)
    assert result.get("status") == 200, result
    assert len(json.loads(result["body"])["outputs"]) == 1
    assert server.process.wait(30) == 0
    assert np.isfinite(json.loads(result["body"])["outputs"][0])
