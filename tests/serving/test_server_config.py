"""In-process tests of the server's parsers, JSON tensor format and batcher."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from serving._batching import DynamicBatcher
from serving._config import (
    BatchingParameters,
    VersionPolicy,
    parse_batching_parameters,
    parse_model_config_file,
)
from serving._errors import ServingError
from serving._json_tensors import (
    arrays_to_response,
    check_json_depth,
    parse_json_body,
    request_to_arrays,
)
from keras_bert.export import version_dirs
from serving._models import Servable
from serving.testing import write_tiny_model


def test_model_config_file_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 2 } } }
  config { name: "b" base_path: "/m/b" model_version_policy { all {} } }
  config { name: "c" base_path: "/m/c"
           model_version_policy { specific { versions: 1 versions: 3 } }
           version_labels { key: "stable" value: 1 }
           version_labels { key: "canary" value: 3 } }
}
""")
    a, b, c = parse_model_config_file(str(path))
    assert a.policy.select([1, 2, 3]) == {2, 3}
    assert b.policy.select([1, 2, 3]) == {1, 2, 3}
    assert c.policy.select([1, 2]) == {1}
    assert c.version_labels == {"stable": 1, "canary": 3}
    assert VersionPolicy().select([]) == set()


def test_model_config_file_rejects_duplicates(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "a" base_path: "/x" } '
                    'config { name: "a" base_path: "/y" } }')
    with pytest.raises(ValueError, match="duplicate"):
        parse_model_config_file(str(path))


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching_parameters.txt"
    path.write_text("""
# comment
max_batch_size { value: 32 }
batch_timeout_micros { value: 5000 }
max_enqueued_batches { value: 10 }
num_batch_threads { value: 3 }
allowed_batch_sizes: 8
pad_variable_length_inputs: true
""")
    assert parse_batching_parameters(str(path)) == BatchingParameters(
        max_batch_size=32, batch_timeout_micros=5000, max_enqueued_batches=10,
        num_batch_threads=3, pad_variable_length_inputs=True)
    assert parse_batching_parameters(None) == BatchingParameters()


def test_version_dirs_ignore_temporary_and_non_numeric(tmp_path):
    for name in ["1", "12", ".tmp-3", "4.tmp", "notes"]:
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a version directory")
    assert version_dirs(str(tmp_path)) == {1: str(tmp_path / "1"), 12: str(tmp_path / "12")}
    assert version_dirs(str(tmp_path / "missing")) == {}


def test_json_depth_ignores_brackets_inside_strings():
    check_json_depth(b'{"a": ["[[[[[[\\"[[[[", {"b": "{{{{{{"}]}', max_depth=3)
    with pytest.raises(ServingError, match="nested deeper"):
        check_json_depth(b'{"a": [[[1]]]}', max_depth=3)
    with pytest.raises(ServingError, match="nested deeper"):
        parse_json_body(b"[" * 1_000_000, max_depth=32)


def test_request_formats_and_response_shapes():
    dtypes = {"text": tf.string}
    arrays, row = request_to_arrays({"instances": ["a", {"b64": "Yg=="}]}, dtypes)
    assert row and arrays["text"].tolist() == [b"a", b"b"]
    arrays, row = request_to_arrays({"inputs": {"text": ["a"]}}, dtypes)
    assert not row and arrays["text"].tolist() == [b"a"]
    single = {"score": np.array([0.1, 0.25], np.float32)}
    assert arrays_to_response(single, row_format=False) == {"outputs": [0.1, 0.25]}
    assert arrays_to_response(single, row_format=True) == {"predictions": [0.1, 0.25]}
    binary = {"raw_bytes": np.array([b"\x00\xff"], object), "word": np.array([b"\xff"], object)}
    assert arrays_to_response(binary, row_format=False) == {
        "outputs": {"raw_bytes": [{"b64": "AP8="}], "word": [{"b64": "/w=="}]}}
    with pytest.raises(ServingError, match="inconsistent batch size"):
        arrays_to_response({"a": np.zeros([2]), "b": np.zeros([3])}, row_format=True)


def test_batcher_pads_merges_and_splits(tmp_path):
    servable = Servable("tiny", 1, write_tiny_model(str(tmp_path / "tiny"), 1, warmup=False))
    batcher = DynamicBatcher(BatchingParameters(
        max_batch_size=16, batch_timeout_micros=1_000_000, num_batch_threads=1,
        pad_variable_length_inputs=True))
    results = {}
    barrier = threading.Barrier(4)

    def send(length):
        token_ids = np.full([2, length], length, np.int32)
        barrier.wait()
        results[length] = batcher.run(servable, "serve_ids", {
            "token_ids": token_ids, "padding_mask": np.ones_like(token_ids)})

    threads = [threading.Thread(target=send, args=(n,)) for n in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.stop()
    for length, outputs in results.items():
        assert outputs["sum"].tolist() == [length * length] * 2
        assert outputs["count"].tolist() == [length] * 2
    assert max(int(out["padded_length"][0]) for out in results.values()) == 4
    assert any(int(results[n]["padded_length"][0]) > n for n in (1, 2, 3))


def test_deploy_configs_parse():
    """The files in serving/deploy/ are valid for both servers' parsers."""
    import os

    from serving.testing import REPO_ROOT

    deploy = os.path.join(REPO_ROOT, "serving", "deploy")
    (bert,) = parse_model_config_file(os.path.join(deploy, "models.config"))
    assert bert.name == "bert" and bert.policy.kind == "latest"
    params = parse_batching_parameters(os.path.join(deploy, "batching_parameters.txt"))
    assert params.pad_variable_length_inputs and params.max_batch_size == 32
