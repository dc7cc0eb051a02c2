"""End-to-end tests of `python -m serving.server` on loopback ports.

Two real servers run in subprocesses for the whole module: one configured
with `--model_config_file` (models `tiny` and `swap`, version labels, 0.5 s
polling) and one with `--model_name/--model_base_path` and dynamic batching.
Requests go through REST (row and columnar formats) and the
`tensorflow-serving-api` gRPC stubs.
"""

import base64
import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from serving import client
from serving.testing import ServerProcess, write_tiny_model

MAX_BODY_BYTES = 100_000
LONG_TEXT = "a very long text " * 2000  # far above any model's maximum length
TEXTS = ["hello world", "", "é" * 7, LONG_TEXT]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Starts both servers (in parallel) and yields `(config_server, batching_server)`."""
    root = tmp_path_factory.mktemp("serving")
    write_tiny_model(str(root / "models" / "tiny"), 1)
    write_tiny_model(str(root / "models" / "swap"), 1, warmup=False)
    shutil.copytree(root / "models" / "tiny", root / "models" / "batched")
    # A leftover temp dir and a non-numeric dir must be ignored.
    os.makedirs(root / "models" / "tiny" / ".tmp-9")
    os.makedirs(root / "models" / "tiny" / "notes")
    config_path = root / "models.config"
    config_path.write_text(f"""
model_config_list {{
  config {{
    name: "tiny"
    base_path: "{root / 'models' / 'tiny'}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 }} }}
    version_labels {{ key: "stable" value: 1 }}
  }}
  config {{
    name: "swap"
    base_path: "{root / 'models' / 'swap'}"
    model_platform: "tensorflow"
  }}
}}
""")
    batching_path = root / "batching_parameters.txt"
    batching_path.write_text("""
max_batch_size { value: 64 }
batch_timeout_micros { value: 1000000 }  # long: robust on a busy machine
max_enqueued_batches { value: 100 }
num_batch_threads { value: 2 }
pad_variable_length_inputs: true
""")
    config_server = ServerProcess(
        ["--model_config_file", str(config_path),
         "--file_system_poll_wait_seconds", "0.5",
         "--max_body_bytes", str(MAX_BODY_BYTES)],
        str(root / "config_server.log"),
    )
    batching_server = ServerProcess(
        ["--model_name", "batched",
         "--model_base_path", str(root / "models" / "batched"),
         "--enable_batching", "--batching_parameters_file", str(batching_path)],
        str(root / "batching_server.log"),
    )
    config_server.root = root
    try:
        config_server.wait_until_available("tiny")
        config_server.wait_until_available("swap")
        batching_server.wait_until_available("batched")
        yield config_server, batching_server
    finally:
        config_server.stop()
        batching_server.stop()


def _post(server, path, body):
    """POSTs a raw body; returns `(status, json)`."""
    return client.rest_request(server.rest_url, "POST", path, body)


def _assert_serving(server):
    """A valid request still succeeds (after a bad one)."""
    response = client.rest_predict(server.rest_url, "tiny", inputs={"text": ["ok"]})
    assert response["outputs"]["label"] == ["short"]


# ----------------------------------------------------------------------------
# Status and metadata
# ----------------------------------------------------------------------------


def test_status_json_is_tf_servings(servers):
    server, _ = servers
    expected = {"model_version_status": [{
        "version": "1", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }]}
    assert client.rest_status(server.rest_url, "tiny") == expected
    assert client.rest_status(server.rest_url, "tiny", version=1) == expected
    assert client.rest_status(server.rest_url, "tiny", label="stable") == expected
    assert "Successfully loaded tiny version 1 (1 warmup requests)" in server.log()
    proto = client.grpc_status(server.grpc_target, "tiny")
    assert [(s.version, s.state, s.status.error_code)
            for s in proto.model_version_status] == [(1, 30, 0)]  # 30: AVAILABLE


def test_metadata_rest_and_grpc_agree(servers):
    server, _ = servers
    metadata = client.rest_metadata(server.rest_url, "tiny")
    assert metadata["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serve_ids"} <= set(signatures)
    text_input = signatures["serving_default"]["inputs"]["text"]
    assert text_input["dtype"] == "DT_STRING"
    assert text_input["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    grpc_map = client.grpc_metadata(server.grpc_target, "tiny")
    assert json_format.MessageToDict(
        grpc_map, preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )["signature_def"] == signatures


# ----------------------------------------------------------------------------
# Predict
# ----------------------------------------------------------------------------


def test_row_columnar_and_grpc_give_identical_numbers(servers):
    server, _ = servers
    rows = client.rest_predict(server.rest_url, "tiny", instances=TEXTS)["predictions"]
    columns = client.rest_predict(server.rest_url, "tiny", inputs={"text": TEXTS})["outputs"]
    grpc_out = client.grpc_predict(server.grpc_target, "tiny", {"text": TEXTS})

    expected_lengths = np.array([len(text) / 2 for text in TEXTS], np.float32)
    np.testing.assert_array_equal(np.array(columns["length"], np.float32), expected_lengths)
    np.testing.assert_array_equal(
        np.array([row["length"] for row in rows], np.float32), expected_lengths)
    np.testing.assert_array_equal(grpc_out["length"], expected_lengths)
    labels = ["long", "short", "long", "long"]
    assert columns["label"] == labels
    assert [row["label"] for row in rows] == labels
    assert [label.decode() for label in grpc_out["label"]] == labels
    assert columns["version"] == [1, 1, 1, 1]


def test_named_signature_rows_columns_and_grpc(servers):
    server, _ = servers
    token_ids = [[1, 2, 3], [4, 5, 6]]
    padding_mask = [[1, 1, 0], [1, 1, 1]]
    rows = client.rest_predict(
        server.rest_url, "tiny", signature_name="serve_ids",
        instances=[{"token_ids": t, "padding_mask": m}
                   for t, m in zip(token_ids, padding_mask)],
    )["predictions"]
    columns = client.rest_predict(
        server.rest_url, "tiny", signature_name="serve_ids",
        inputs={"token_ids": token_ids, "padding_mask": padding_mask},
    )["outputs"]
    grpc_out = client.grpc_predict(
        server.grpc_target, "tiny", signature_name="serve_ids",
        inputs={"token_ids": np.array(token_ids, np.int32),
                "padding_mask": np.array(padding_mask, np.int32)},
    )
    assert [row["sum"] for row in rows] == columns["sum"] == grpc_out["sum"].tolist() == [3, 15]
    assert columns["count"] == [2, 3]


def test_single_input_shorthands_and_b64(servers):
    server, _ = servers
    encoded = {"b64": base64.b64encode("héllo".encode()).decode()}
    status, body = _post(server, "/v1/models/tiny/labels/stable:predict",
                         {"inputs": [encoded, "héllo"]})
    assert status == 200, body
    assert body["outputs"]["length"] == [2.5, 2.5]
    status, body = _post(server, "/v1/models/tiny/versions/1:predict",
                         {"instances": [{"text": "abc"}]})
    assert status == 200 and body["predictions"][0]["length"] == 1.5


# ----------------------------------------------------------------------------
# Bad input: TF Serving's code, a JSON error, and the server keeps serving
# ----------------------------------------------------------------------------

_PREDICT = "/v1/models/tiny:predict"
_IDS = {"signature_name": "serve_ids"}
BAD_REQUESTS = {
    "empty_body": (_PREDICT, b"", 400, "The document is empty"),
    "malformed_json": (_PREDICT, b'{"inputs": [', 400, "JSON Parse error"),
    "not_an_object": (_PREDICT, b"[1, 2]", 400, "JSON Value"),
    "both_formats": (_PREDICT, {"instances": ["a"], "inputs": ["a"]}, 400, "not both"),
    "neither_format": (_PREDICT, {"signature_name": "serving_default"}, 400, "missing"),
    "missing_input": (_PREDICT, dict(_IDS, inputs={"token_ids": [[1]]}), 400,
                      "Missing but required: {padding_mask}"),
    "extra_input": (_PREDICT, {"inputs": {"text": ["a"], "extra": ["b"]}}, 400,
                    "Sent extra: {extra}"),
    "unequal_instance_keys": (_PREDICT, dict(_IDS, instances=[
        {"token_ids": [1], "padding_mask": [1]}, {"token_ids": [1]}]), 400,
        "keys of every instance must be equal"),
    "float_for_int": (_PREDICT, dict(_IDS, inputs={
        "token_ids": [[1.5]], "padding_mask": [[1]]}), 400, "not of expected type: int32"),
    "string_for_int": (_PREDICT, dict(_IDS, inputs={
        "token_ids": [["x"]], "padding_mask": [[1]]}), 400, "not of expected type: int32"),
    "number_for_string": (_PREDICT, {"inputs": {"text": [3]}}, 400,
                          "not of expected type: string"),
    "ragged_rows": (_PREDICT, dict(_IDS, inputs={
        "token_ids": [[1, 2], [3]], "padding_mask": [[1, 1], [1]]}), 400, "Expecting shape"),
    "wrong_rank": (_PREDICT, {"inputs": {"text": [["a"]]}}, 400, "signature expects"),
    "bad_b64": (_PREDICT, {"inputs": {"text": [{"b64": "!!"}]}}, 400, "base64"),
    "unknown_signature": (_PREDICT, {"signature_name": "nope", "inputs": ["a"]}, 400,
                          'Serving signature key "nope" not found'),
    "unknown_model": ("/v1/models/nope:predict", {"inputs": ["a"]}, 404,
                      "Servable not found for request: Latest(nope)"),
    "unknown_version": ("/v1/models/tiny/versions/7:predict", {"inputs": ["a"]}, 404,
                        "Specific(tiny, 7)"),
    "unknown_label": ("/v1/models/tiny/labels/canary:predict", {"inputs": ["a"]}, 400,
                      "Unrecognized servable version label"),
    # CVE-2025-0649: deep nesting must be an error, not a crash.
    "nested_40k_deep": (_PREDICT, b'{"inputs": ' + b"[" * 40_000 + b"]" * 40_000 + b"}",
                        400, "nested deeper than the limit"),
    "nested_200_deep": (_PREDICT, b'{"inputs": {"text": ' + b"[" * 200 + b'"a"'
                        + b"]" * 200 + b"}}", 400, "nested deeper than the limit"),
    "nested_and_over_size_limit": (_PREDICT, b'{"inputs": ' + b"[" * 100_000
                                   + b"]" * 100_000 + b"}", 413, "exceeds the limit"),
    "too_large": (_PREDICT, {"inputs": {"text": ["x" * (2 * MAX_BODY_BYTES)]}}, 413,
                  "exceeds the limit"),
    "bad_path": ("/v1/models/tiny:explain", {"inputs": ["a"]}, 400,
                 "Malformed request: POST /v1/models/tiny:explain"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_rest_request_gets_tf_serving_code_and_json_error(servers, case):
    server, _ = servers
    path, body, expected_status, fragment = BAD_REQUESTS[case]
    status, response = _post(server, path, body)
    assert status == expected_status, response
    assert set(response) == {"error"} and fragment in response["error"], response
    _assert_serving(server)


def test_chunked_bodies_are_read_and_limited(servers):
    server, _ = servers
    import http.client

    def post_chunked(body):
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
        connection.request("POST", _PREDICT, body=iter(chunks), encode_chunked=True,
                           headers={"Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        result = response.status, json.loads(response.read())
        connection.close()
        return result

    status, body = post_chunked(json.dumps({"inputs": {"text": ["abcd"]}}).encode())
    assert status == 200 and body["outputs"]["length"] == [2.0]
    status, body = post_chunked(b'{"inputs": ["' + b"x" * (2 * MAX_BODY_BYTES) + b'"]}')
    assert status == 413 and "exceeds the limit" in body["error"]
    _assert_serving(server)


def test_bad_status_and_metadata_requests(servers):
    server, _ = servers
    for path, expected_status in [
        ("/v1/models/nope", 404), ("/v1/models/tiny/versions/7", 404),
        ("/v1/models/nope/metadata", 404), ("/v1/models/tiny/versions/7/metadata", 404),
        ("/v2/models/tiny", 404),
    ]:
        status, response = client.rest_request(server.rest_url, "GET", path)
        assert status == expected_status and "error" in response, (path, response)
    _assert_serving(server)


def test_bad_grpc_requests_get_matching_status_codes(servers):
    server, _ = servers
    cases = [
        (dict(model="nope", inputs={"text": ["a"]}), grpc.StatusCode.NOT_FOUND),
        (dict(model="tiny", version=7, inputs={"text": ["a"]}), grpc.StatusCode.NOT_FOUND),
        (dict(model="tiny", inputs={"text": ["a"]}, signature_name="nope"),
         grpc.StatusCode.FAILED_PRECONDITION),
        (dict(model="tiny", inputs={"token_ids": np.ones([1, 1], np.int32)},
              signature_name="serve_ids"), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(model="tiny", inputs={"text": np.ones([2], np.float32)}),
         grpc.StatusCode.INVALID_ARGUMENT),
        (dict(model="tiny", inputs={"text": ["a"]}, output_filter=["nope"]),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for kwargs, code in cases:
        with pytest.raises(client.ClientError) as error:
            client.grpc_predict(server.grpc_target, **kwargs)
        assert error.value.status == code, (kwargs, error.value)
    filtered = client.grpc_predict(server.grpc_target, "tiny", {"text": ["a"]},
                                   output_filter=["label"])
    assert list(filtered) == ["label"]


# ----------------------------------------------------------------------------
# Command-line client
# ----------------------------------------------------------------------------


def test_client_cli_one_off_and_load_test(servers, capsys):
    server, _ = servers
    assert client.main(["--rest", server.rest_url, "--model", "tiny",
                        "--text", "hello world", "--text", ""]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"]["length"] == [5.5, 0.0]
    assert client.main(["--grpc", server.grpc_target, "--model", "tiny", "--signature",
                        "serve_ids", "--inputs",
                        '{"token_ids": [[1, 2]], "padding_mask": [[1, 1]]}']) == 0
    assert json.loads(capsys.readouterr().out)["sum"] == [3]
    assert client.main(["--grpc", server.grpc_target, "--model", "tiny", "--status"]) == 0
    assert '"AVAILABLE"' in capsys.readouterr().out
    for endpoint in (["--rest", server.rest_url], ["--grpc", server.grpc_target]):
        assert client.main([*endpoint, "--model", "tiny", "--text", "x",
                            "--load", "20", "--concurrency", "4"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["errors"] == 0 and report["requests"] == 20
        assert report["p50_ms"] <= report["p90_ms"] <= report["p99_ms"]
    assert client.main(["--rest", server.rest_url, "--model", "nope", "--text", "x"]) == 1
    assert "404" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Hot reload: a new version is served while requests keep succeeding
# ----------------------------------------------------------------------------


def test_new_version_is_served_without_failed_requests(servers):
    server, _ = servers
    swap_dir = str(server.root / "models" / "swap")
    errors, versions_seen = [], []
    stop = threading.Event()

    def keep_requesting():
        use_grpc = False
        while not stop.is_set():
            try:
                if use_grpc:
                    version = int(client.grpc_predict(
                        server.grpc_target, "swap", {"text": ["x"]})["version"][0])
                else:
                    version = client.rest_predict(
                        server.rest_url, "swap", inputs={"text": ["x"]})["outputs"]["version"][0]
                versions_seen.append(version)
            except Exception as error:
                errors.append(repr(error))
            use_grpc = not use_grpc

    sender = threading.Thread(target=keep_requesting)
    sender.start()
    try:
        time.sleep(0.3)
        write_tiny_model(swap_dir, 2, warmup=False)  # temp dir + rename
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not versions_seen or versions_seen[-1] != 2):
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        sender.join()
    assert not errors, errors[:3]
    assert versions_seen[0] == 1 and versions_seen[-1] == 2
    # Once version 2 answered, version 1 never answered again.
    assert versions_seen[versions_seen.index(2):] == [2] * len(versions_seen[versions_seen.index(2):])
    states = {s["version"]: s["state"]
              for s in client.rest_status(server.rest_url, "swap")["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}


def test_broken_version_is_reported_and_old_one_keeps_serving(servers):
    server, _ = servers
    swap_dir = server.root / "models" / "swap"
    staging = swap_dir / ".tmp-broken"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"not a SavedModel")
    os.rename(staging, swap_dir / "3")
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        try:
            status = client.rest_status(server.rest_url, "swap", version=3)
            break
        except client.ClientError:
            time.sleep(0.2)
    assert status is not None, server.log()
    (entry,) = status["model_version_status"]
    assert entry["state"] == "END" and entry["status"]["error_code"] != "OK"
    assert entry["status"]["error_message"]
    response = client.rest_predict(server.rest_url, "swap", inputs={"text": ["x"]})
    assert response["outputs"]["version"] == [2]


# ----------------------------------------------------------------------------
# Dynamic batching
# ----------------------------------------------------------------------------


def test_batching_merges_mixed_length_requests(servers):
    _, server = servers
    num_requests = 12
    barrier = threading.Barrier(num_requests)
    results, errors = {}, []

    def send(index):
        length = index % 5 + 1
        batch = index % 3 + 1
        token_ids = np.arange(batch * length, dtype=np.int32).reshape(batch, length) + index
        padding_mask = np.ones_like(token_ids)
        barrier.wait()
        try:
            if index % 2:
                outputs = client.grpc_predict(
                    server.grpc_target, "batched", signature_name="serve_ids",
                    inputs={"token_ids": token_ids, "padding_mask": padding_mask})
                outputs = {name: value.tolist() for name, value in outputs.items()}
            else:
                outputs = client.rest_predict(
                    server.rest_url, "batched", signature_name="serve_ids",
                    inputs={"token_ids": token_ids, "padding_mask": padding_mask})["outputs"]
            results[index] = (token_ids, outputs)
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(num_requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    merged = 0
    for token_ids, outputs in results.values():
        assert outputs["sum"] == token_ids.sum(axis=1).tolist()
        assert outputs["count"] == [token_ids.shape[1]] * token_ids.shape[0]
        merged += outputs["padded_length"][0] > token_ids.shape[1]
    # Shorter requests were padded to the longest one they were batched with.
    assert merged > 0


def test_batching_serves_text_and_rejects_bad_input(servers):
    _, server = servers
    outputs = client.rest_predict(server.rest_url, "batched", inputs={"text": TEXTS})["outputs"]
    assert outputs["length"] == [len(text) / 2 for text in TEXTS]
    status, body = _post(server, "/v1/models/batched:predict", {"inputs": {"text": [1]}})
    assert status == 400 and "error" in body


def test_sigterm_shuts_down_cleanly(servers):
    _, server = servers
    assert server.stop() == 0
