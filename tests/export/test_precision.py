"""`--precision {float32,bfloat16,int8}`: bf16/int8 models round trip through `.keras`, export, pass the op
check and serve (TF1 loader and `serving.server`, REST and gRPC); int8 needs `--xla_cpu_compilation_enabled`."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bert
from keras_bert.export import PRECISIONS, WARMUP_FILE, export_allowlist, export_model_dir, saved_model_ops, uses_xla
from keras_bert.export.precision import BATCH_BUCKETS, bucket, length_buckets, load_for_precision, quantize_int8
from tests.export.conftest import CLASS_LABELS, MAX_POSITIONS, build_model
from tests.export.helpers import MASKED, TEXTS, Tf1Model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ids(masked=False):
    ids = np.array([[2, 5, 7, 9, 10, 5, 11, 3, 0, 0], [2, 12, 13, 14, 15, 3, 0, 0, 0, 0]], "int32")
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32")}
    if masked:
        inputs["masked_positions"] = np.array([[1, 3], [2, 0]], "int32")
    return inputs


def _max_difference(a, b, relative=False):
    """Largest |a - b| over all outputs (relative: divided by each output's largest |a|)."""
    differences = []
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        x, y = np.asarray(x, "float32"), np.asarray(y, "float32")
        differences.append(np.max(np.abs(x - y)) / (np.max(np.abs(x)) if relative else 1.0))
    return float(max(differences))


def test_precision_names_and_buckets():
    assert PRECISIONS == ("float32", "bfloat16", "int8")
    assert [bucket(n, BATCH_BUCKETS) for n in (1, 2, 8, 9, 32, 33, 65)] == [1, 8, 8, 32, 32, 64, 96]
    assert length_buckets(16) == (16,)
    assert length_buckets(100) == (16, 32, 64, 100)
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, int8, got 'int4'"):
        export_model_dir("unused", "unused", precision="int4")


@pytest.mark.parametrize("kind", ["pretrainer", pytest.param("classifier", marks=pytest.mark.large)])
def test_int8_quantized_model_round_trips_through_keras_file(kind, tmp_path):
    model = quantize_int8(build_model(kind))
    quantized = [layer.path for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)]
    assert "transformer_block_0/attention/qkv" in quantized, quantized
    directory = keras_bert.save(model, str(tmp_path / kind))
    reloaded = keras_bert.load(directory)
    assert [layer.path for layer in reloaded._flatten_layers()
            if getattr(layer, "quantization_mode", None)] == quantized
    qkv = next(layer for layer in reloaded._flatten_layers() if layer.path == "transformer_block_0/attention/qkv")
    assert qkv.kernel.dtype == "int8"
    inputs = _ids(masked=kind == "pretrainer")
    assert _max_difference(model(inputs), reloaded(inputs)) == 0.0
    # The int8 model computes something close to, but not the same as, the float32 one.
    difference = _max_difference(build_model(kind)(inputs), reloaded(inputs), relative=True)
    assert 0.0 < difference < 0.1, difference


def test_bfloat16_model_stores_bfloat16_weights_and_round_trips(model_dirs, tmp_path):
    model = load_for_precision(model_dirs("classifier"), "bfloat16")
    qkv = next(layer for layer in model._flatten_layers() if layer.path == "transformer_block_0/attention/qkv")
    assert qkv.kernel.dtype == "bfloat16"
    norm = next(layer for layer in model._flatten_layers() if (layer.path or "").endswith("ffn_layer_norm"))
    assert norm.gamma.dtype == "float32"
    directory = keras_bert.save(model, str(tmp_path / "bf16"))
    reloaded = keras_bert.load(directory, dtype_policy="bfloat16")
    inputs = _ids()
    assert _max_difference(model(inputs), reloaded(inputs)) == 0.0
    difference = _max_difference(keras_bert.load(model_dirs("classifier"))(inputs), model(inputs), relative=True)
    assert 0.0 < difference < 0.1, difference


@pytest.fixture(scope="module")
def precision_exports(tmp_path_factory, model_dirs):
    """`get(kind, task, precision)` -> version dir, exported once."""
    base = tmp_path_factory.mktemp("precision_exports")
    cache = {}

    def get(kind, task, precision):
        key = (kind, task, precision)
        if key not in cache:
            cache[key] = export_model_dir(model_dirs(kind), str(base / f"{kind}_{precision}"), task,
                                          precision=precision)
        return cache[key]

    return get


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_low_precision_export_passes_op_check_and_agrees(precision_exports, precision):
    path = precision_exports("classifier", "classification", precision)
    assert saved_model_ops(path) <= export_allowlist(), sorted(saved_model_ops(path) - export_allowlist())
    assert uses_xla(path) == (precision == "int8")
    dtypes = tf.train.load_checkpoint(os.path.join(path, "variables", "variables")).get_variable_to_dtype_map()
    kernels = {name: dtype for name, dtype in dtypes.items() if "VARIABLE_VALUE" in name}
    expected_kernel = {"bfloat16": tf.bfloat16, "int8": tf.int8}[precision]
    assert sum(dtype == expected_kernel for dtype in kernels.values()) >= 8, kernels  # 4 per block, 2 blocks
    float32 = Tf1Model(precision_exports("classifier", "classification", "float32"))
    low = Tf1Model(path)
    try:
        expected = float32.run("serving_default", {"text": TEXTS})
        got = low.run("serving_default", {"text": TEXTS})
        single = low.run("serving_default", {"text": TEXTS[2:3]})
        by_ids = low.run("serve_ids", _ids())
    finally:
        float32.close()
        low.close()
    assert got["probabilities"].dtype == np.float32
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=0.05)
    assert not np.array_equal(got["probabilities"], expected["probabilities"])
    # Bucket padding (int8) does not change a row: alone or in a batch of 7, the same answer.
    np.testing.assert_allclose(single["probabilities"][0], got["probabilities"][2], atol=1e-5)
    assert by_ids["logits"].shape == (2, len(CLASS_LABELS))


@pytest.mark.large
def test_int8_export_matches_the_quantized_keras_model_and_warms_every_bucket(precision_exports, model_dirs):
    path = precision_exports("pretrainer", "fill_mask", "int8")
    model = load_for_precision(model_dirs("pretrainer"), "int8")
    served = Tf1Model(path)
    try:
        by_ids = served.run("serve_ids", _ids(masked=True))
        served.run("serving_default", {"text": MASKED})
    finally:
        served.close()
    expected = model(_ids(masked=True))
    np.testing.assert_allclose(by_ids["mlm_logits"], expected["mlm_logits"], atol=1e-3)
    records = list(tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE)))
    assert len(records) == 1 + len(BATCH_BUCKETS) * len(length_buckets(MAX_POSITIONS))


@pytest.mark.large
def test_token_outputs_are_unpadded_under_int8(precision_exports):
    served = Tf1Model(precision_exports("token_classifier", "token_classification", "int8"))
    try:
        logits = served.run("serve_ids", _ids())["logits"]
        texts = served.run("serving_default", {"text": TEXTS})
    finally:
        served.close()
    assert logits.shape[:2] == (2, 10)
    assert texts["num_entities"].shape == (len(TEXTS),)


def test_server_serves_bf16_and_int8_and_refuses_xla_without_the_flag(precision_exports, tmp_path):
    from serving.client import grpc_predict, rest_predict
    from serving.testing import ServerProcess

    paths = {p: precision_exports("classifier", "classification", p) for p in ("bfloat16", "int8")}
    config = tmp_path / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{p}" base_path: "{os.path.dirname(path)}" model_platform: "tensorflow" }}\n'
        for p, path in paths.items()) + "}\n")
    reference = Tf1Model(precision_exports("classifier", "classification", "float32"))
    try:
        expected = reference.run("serving_default", {"text": TEXTS})
    finally:
        reference.close()
    server = ServerProcess(["--model_config_file", str(config), "--xla_cpu_compilation_enabled=true"],
                           str(tmp_path / "server.log"))
    try:
        for name in paths:
            server.wait_until_available(name, timeout=240)
            by_rest = rest_predict(server.rest_url, name, inputs={"text": TEXTS}, timeout=120)["outputs"]
            by_grpc = grpc_predict(server.grpc_target, name, {"text": TEXTS}, timeout=120)
            np.testing.assert_allclose(by_rest["probabilities"], expected["probabilities"], atol=0.05)
            np.testing.assert_allclose(by_grpc["probabilities"], by_rest["probabilities"], atol=1e-6)
        warmups = 1 + len(BATCH_BUCKETS) * len(length_buckets(MAX_POSITIONS))
        assert f"Successfully loaded int8 version 1 ({warmups} warmup requests)" in server.log(), server.log()
    finally:
        server.stop()

    from serving._models import XLA_DISABLED_MESSAGE, Servable
    from serving._errors import ServingError

    with pytest.raises(ServingError, match=XLA_DISABLED_MESSAGE):
        Servable("int8", 1, paths["int8"])
    Servable("bfloat16", 1, paths["bfloat16"])  # no XLA function: loads without the flag


@pytest.mark.large
def test_export_cli_takes_precision(model_dirs, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "serving.export", "--model", model_dirs("classifier"),
                             "--out", str(tmp_path / "clf"), "--precision", "int8", "--no-warmup"],
                            cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert uses_xla(result.stdout.strip())
    from serving.export import parse_args

    assert parse_args(["--model", "m", "--out", "o"]).precision == "float32"
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--out", "o", "--mixed-precision", "mixed_bfloat16"])
