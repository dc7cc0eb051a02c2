"""Version layout (temp dir + rename, next version), warmup records, server configs, op allow-list, CLI errors."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_bert.export import (ALLOWLIST_PATH, WARMUP_FILE, export, export_allowlist, next_version,
                               saved_model_ops, task_model, version_numbers)
from keras_bert.tokenization import load_allowlist
from tests.export.conftest import EXPORTS, VOCAB, build_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("key", sorted(EXPORTS))
def test_every_op_is_allowed(exported, key):
    path, served, _ = exported(key)
    ops = saved_model_ops(path)
    assert {"FastWordpieceTokenizeWithOffsets", "FastBertNormalize", "MatMul"} <= ops
    assert set(served.signature_defs) >= {"serving_default", "serve_ids", "serve_examples"}
    assert not ops - export_allowlist(), f"ops outside the allow-lists: {sorted(ops - export_allowlist())}"


def test_model_allowlist_has_no_tensorflow_text_ops():
    model_ops = load_allowlist(ALLOWLIST_PATH)
    for op in ("TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks", "TFText>Utf8Binarize"):
        assert op not in export_allowlist()
    import tensorflow_text  # noqa: F401  (registers its ops, so we can tell them apart)
    from tensorflow.python.framework import op_def_registry

    for op in model_ops:
        op_def = op_def_registry.get(op)
        assert op_def is not None, f"{op} is not a registered op"
    # Core ops are registered without tensorflow_text; check in a fresh interpreter.
    code = ("import sys, tensorflow as tf; from tensorflow.python.framework import op_def_registry as r; "
            "missing=[o for o in sys.argv[1:] if r.get(o) is None]; print(missing); sys.exit(bool(missing))")
    result = subprocess.run([sys.executable, "-c", code, *sorted(model_ops)], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_warmup_and_server_configs(exported):
    from google.protobuf import text_format
    from tensorflow_serving.apis import prediction_log_pb2
    from tensorflow_serving.config import model_server_config_pb2

    path, served, _ = exported("classification")
    records = list(tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE)))
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    assert request.model_spec.name == "classification"
    texts = [t.decode() for t in tf.make_ndarray(request.inputs["text"])]
    assert "" in texts
    outputs = served.run("serving_default", {"text": texts})  # the warmup request is valid
    assert outputs["probabilities"].shape == (len(texts), 3)

    base = os.path.dirname(os.path.dirname(path))
    config = model_server_config_pb2.ModelServerConfig()
    with open(os.path.join(base, "models.config")) as f:
        text_format.Parse(f.read(), config)
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["classification"].base_path == os.path.dirname(path)
    assert entries["classification"].model_platform == "tensorflow"
    from serving._config import parse_batching_parameters  # the wheel lacks BatchingParameters' proto

    batching = parse_batching_parameters(os.path.join(base, "batching_parameters.txt"))
    assert batching.max_batch_size == 32 and batching.pad_variable_length_inputs


def test_version_layout_is_atomic_and_numbered(tmp_path, monkeypatch):
    out = str(tmp_path / "base" / "clf")
    assert next_version(out) == 1
    os.makedirs(os.path.join(out, "7"))
    os.makedirs(os.path.join(out, "not-a-version"))
    assert version_numbers(out) == [7] and next_version(out) == 8
    model = build_model("classifier")
    seen = []
    real_save = tf.saved_model.save

    def spy(module, directory, signatures=None):
        # While writing, the files go to a hidden temp dir; no numbered dir exists yet.
        seen.append((os.path.basename(directory), version_numbers(out)))
        real_save(module, directory, signatures=signatures)

    monkeypatch.setattr(tf.saved_model, "save", spy)
    path = export(model, out, "classification", VOCAB, max_length=8, warmup=False)
    assert path == os.path.join(out, "8")
    assert seen[0][0].startswith(".tmp-export-8-") and seen[0][1] == [7]
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert sorted(os.listdir(out)) == ["7", "8", "not-a-version"]  # the temp dir was renamed away
    with pytest.raises(FileExistsError):
        export(model, out, "classification", VOCAB, version=8)

    def failing(module, directory, signatures=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing)
    with pytest.raises(RuntimeError):
        export(model, out, "classification", VOCAB)
    assert sorted(os.listdir(out)) == ["7", "8", "not-a-version"]  # no half version, no leftover temp dir


def test_task_model_errors():
    classifier = build_model("classifier")
    with pytest.raises(ValueError, match="needs a BertTokenClassifier"):
        task_model(classifier, "token_classification")
    with pytest.raises(ValueError, match="masked-LM head"):
        task_model(classifier.encoder, "fill_mask")
    with pytest.raises(ValueError, match="embedding task only"):
        task_model(classifier, "classification", pooling="cls")
    assert task_model(classifier, "embedding", pooling="cls").pooling == "cls"
    with pytest.raises(ValueError, match="unknown task"):
        task_model(classifier, "translation")


def test_cli_rejects_a_task_that_does_not_fit(model_dirs, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "serving.export", "--model", model_dirs("classifier"), "--task", "token_classification",
         "--out", str(tmp_path / "m")],
        cwd=REPO_ROOT, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2
    assert "needs a BertTokenClassifier, but the model is a BertClassifier" in result.stderr
    assert not os.path.exists(tmp_path / "m" / "1")
