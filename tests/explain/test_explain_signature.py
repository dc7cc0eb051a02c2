"""`serving.export --explain`: the `explain` signature, loaded the way TF Serving loads it (TF1 session loader) and
served by `serving.server`, gives the library's attributions; it uses only ops on the serving allow-list."""

import os

import numpy as np
import pytest

import keras_bert
from keras_bert import explain
from keras_bert.export import export_allowlist, saved_model_ops
from serving import client
from serving import export as export_cli
from serving.testing import ServerProcess
from tests.export.helpers import Tf1Model, decode

TEXTS = ["The unbelievably good film, by Émile!", "a dull plot", "not great , not bad ?", "witty"]
PAIRS = ["Who wrote it?", "", "ann wrote it", "the movie"]
STEPS = 16


@pytest.fixture(scope="module")
def exported(saved_classifier, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain_export") / "models" / "classifier"
    assert export_cli.main(["--model", saved_classifier, "--out", str(out), "--explain", "--explain-steps",
                            str(STEPS), "--no-warmup"]) == 0
    return os.path.join(str(out), "1")


def _library(model, text, pair=None):
    return explain.integrated_gradients(model, text, text_pair=pair, steps=STEPS)


def _check_against_library(outputs, model, texts, pairs=None):
    words = decode(outputs["words"])
    tokens = decode(outputs["tokens"])
    for i, text in enumerate(texts):
        expected = _library(model, text, None if pairs is None else pairs[i])
        n, w = len(expected["tokens"]), len(expected["words"])
        assert list(tokens[i, :n]) == expected["tokens"] and not any(tokens[i, n:])
        np.testing.assert_allclose(outputs["token_attributions"][i, :n], expected["attributions"], atol=1e-4)
        np.testing.assert_allclose(outputs["word_attributions"][i, :w], expected["word_attributions"], atol=1e-4)
        assert list(words[i, :w]) == expected["words"] and not any(words[i, w:])
        spans = list(zip(outputs["word_segments"][i, :w], outputs["word_starts"][i, :w], outputs["word_ends"][i, :w]))
        assert [tuple(map(int, s)) for s in spans] == [tuple(s) for s in expected["word_spans"]]
        for key in ("prediction", "baseline_prediction", "completeness_delta"):
            np.testing.assert_allclose(outputs[key][i], expected[key], atol=1e-4)
        assert decode(outputs["label"])[i] == expected["target"]


def test_explain_signature_matches_the_library(exported, tiny_models):
    model = tiny_models["classification"]
    served = Tf1Model(exported)
    try:
        assert "explain" in served.signature_defs
        outputs = served.run("explain", {"text": TEXTS})
    finally:
        served.close()
    _check_against_library(outputs, model, TEXTS)
    assert np.abs(outputs["completeness_delta"]).max() <= 0.01 * np.abs(
        outputs["prediction"] - outputs["baseline_prediction"]).max()


@pytest.mark.large  # A second export with gradients: minutes on a busy 2-core machine.
def test_explain_signature_pairs(saved_classifier, tiny_models, tmp_path):
    out = tmp_path / "pair"
    assert export_cli.main(["--model", saved_classifier, "--out", str(out), "--pair", "--explain", "--explain-steps",
                            str(STEPS), "--no-warmup"]) == 0
    served = Tf1Model(os.path.join(str(out), "1"))
    try:
        outputs = served.run("explain", {"text": TEXTS, "text_pair": PAIRS})
    finally:
        served.close()
    # An empty pair is packed as an empty second segment, which the library refuses: compare the others.
    keep = [i for i, p in enumerate(PAIRS) if p]
    _check_against_library({k: v[keep] for k, v in outputs.items()}, tiny_models["classification"],
                           [TEXTS[i] for i in keep], [PAIRS[i] for i in keep])


def test_explain_export_uses_only_allowed_ops(exported):
    ops = saved_model_ops(exported)
    assert not ops - export_allowlist(), f"ops outside the allow-lists: {sorted(ops - export_allowlist())}"


@pytest.mark.large  # A server process loading a gradient graph: minutes on a busy 2-core machine.
def test_explain_is_served_by_serving_server(exported, tiny_models, tmp_path):
    server = ServerProcess(["--model_name", "classifier", "--model_base_path", os.path.dirname(exported)],
                           str(tmp_path / "server.log"))
    try:
        server.wait_until_available("classifier", timeout=600)
        response = client.rest_predict(server.rest_url, "classifier", inputs={"text": TEXTS[:2]},
                                       signature_name="explain", timeout=600)
    finally:
        server.stop()
    outputs = {k: np.asarray(v) for k, v in response["outputs"].items()}
    _check_against_library(outputs, tiny_models["classification"], TEXTS[:2])


def test_explain_rejects_kinds_without_a_served_target(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="--explain applies to classification, regression exports, not 'embedding'"):
        keras_bert.export.export(tiny_models["embedding"], str(tmp_path / "e"), "embedding",
                                 tiny_models["embedding"].preprocessor.tokenizer.get_vocabulary(), explain_steps=4)
