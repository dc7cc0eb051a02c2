"""`keras_bert.explain.integrated_gradients` on tiny text-in models of every kind: completeness, words and offsets,
baselines, batching, targets and bad input."""

import numpy as np
import pytest
import tensorflow as tf

from keras_bert import explain

TEXT = "The unbelievably good film, by Émile!"
PAIR = "Who wrote it? Ann wrote it."
KIND_ARGS = {
    "classification": dict(text=TEXT),
    "regression": dict(text=TEXT),
    "token_classification": dict(text=TEXT),
    "question_answering": dict(text="Who wrote the film?", text_pair="Ann wrote the film, not Emile."),
    "embedding": dict(text=TEXT, text_pair="a dull movie"),
}


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("kind", sorted(KIND_ARGS))
@pytest.mark.parametrize("baseline", ["pad", "mask"])
def test_completeness_for_every_kind(tiny_models, kind, baseline):
    result = explain.integrated_gradients(tiny_models[kind], baseline=baseline, steps=50, **KIND_ARGS[kind])
    change = result["prediction"] - result["baseline_prediction"]
    total = float(np.sum(result["attributions"]))
    assert abs(change) > 1e-3, f"{kind}: the tiny model's output hardly moves ({change}); the test would be vacuous"
    np.testing.assert_allclose(result["completeness_delta"], total - change, atol=1e-9)
    assert abs(result["completeness_delta"]) <= 0.01 * abs(change), (kind, result["completeness_delta"], change)
    # Padding and the special tokens: only real tokens get attributions; words hold every non-special piece.
    assert len(result["attributions"]) == len(result["tokens"]) == len(result["token_spans"])
    assert np.isclose(sum(result["word_attributions"]), total - sum(
        a for a, s in zip(result["attributions"], result["token_spans"]) if s is None), atol=1e-9)


def test_prediction_is_the_target_output(tiny_models):
    model = tiny_models["classification"]
    result = explain.integrated_gradients(model, TEXT, target="neg", steps=8)
    probabilities = _softmax(np.asarray(model(result["inputs"], training=False), np.float64))[0]
    assert result["target"] == "neg" and result["target_index"] == 0
    np.testing.assert_allclose(result["prediction"], probabilities[0], atol=1e-6)
    default = explain.integrated_gradients(model, TEXT, steps=8)
    assert default["target"] == model.labels[int(probabilities.argmax())]
    # The baseline prediction is the model's output at the [PAD] baseline ids (specials kept).
    inputs = dict(result["inputs"])
    ids = inputs["token_ids"].copy()
    ids[0, 1:-1] = 0
    np.testing.assert_allclose(result["baseline_prediction"],
                               _softmax(np.asarray(model(dict(inputs, token_ids=ids)), np.float64))[0, 0], atol=1e-6)


def test_forward_from_embeddings_matches_the_model(tiny_models):
    for kind in KIND_ARGS:
        model = tiny_models[kind]
        inputs = model.preprocessor((["the film is good", "a dull plot ,"], ["who wrote it", "ann"]))
        embedded = model.encoder.embeddings(inputs["token_ids"], inputs["segment_ids"])
        got = explain.forward_from_embeddings(model)(inputs, embedded)
        expected = model(inputs, training=False)
        tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6),
                              got, expected)


def test_words_offsets_and_pieces(tiny_models):
    result = explain.integrated_gradients(tiny_models["classification"], TEXT, steps=8)
    assert result["tokens"][:6] == ["[CLS]", "the", "un", "##believ", "##ably", "good"]
    assert result["words"] == ["The", "unbelievably", "good", "film", ",", "by", "Émile", "!"]
    for word, (segment, start, end) in zip(result["words"], result["word_spans"]):
        assert segment == 0 and TEXT[start:end] == word
    pieces = result["attributions"][2:5]
    np.testing.assert_allclose(result["word_attributions"][1], sum(pieces), atol=1e-12)
    pair = explain.integrated_gradients(tiny_models["classification"], TEXT, text_pair=PAIR, steps=8)
    segments = [s[0] for s in pair["word_spans"]]
    assert segments == [0] * 8 + [1] * (len(pair["words"]) - 8)
    for word, (segment, start, end) in zip(pair["words"], pair["word_spans"]):
        assert (TEXT, PAIR)[segment][start:end] == word


def test_baselines(tiny_models):
    model = tiny_models["classification"]
    inputs = model.preprocessor(([TEXT], [PAIR]))
    ids = np.asarray(explain.baseline_ids(inputs["token_ids"], inputs["segment_ids"], inputs["padding_mask"], (2, 3), 4))
    original = np.asarray(inputs["token_ids"])
    special = np.isin(original, (2, 3))
    assert np.all(ids[special] == original[special]) and np.all(ids[~special] == 4)
    zeros = explain.integrated_gradients(model, TEXT, baseline="zeros", steps=8)
    embedded = tf.zeros((1, len(zeros["tokens"]), 8))
    at_zero = explain.forward_from_embeddings(model)(zeros["inputs"], embedded)
    np.testing.assert_allclose(zeros["baseline_prediction"], _softmax(np.asarray(at_zero, np.float64))[0, zeros["target_index"]],
                               atol=1e-6)
    with pytest.raises(explain.ExplainError, match="baseline must be one of pad, mask, zeros"):
        explain.integrated_gradients(model, TEXT, baseline="noise")


def test_batching_does_not_change_attributions(tiny_models):
    model = tiny_models["regression"]
    one = explain.integrated_gradients(model, TEXT, steps=20, batch_size=3)
    all_at_once = explain.integrated_gradients(model, TEXT, steps=20, batch_size=None)
    np.testing.assert_allclose(one["attributions"], all_at_once["attributions"], atol=1e-6)
    # More steps converge: the delta does not grow from 2 to 50 points.
    coarse = explain.integrated_gradients(model, TEXT, steps=2)
    assert abs(all_at_once["completeness_delta"]) <= abs(coarse["completeness_delta"]) + 1e-7


def test_token_classification_and_qa_targets(tiny_models):
    ner = explain.integrated_gradients(tiny_models["token_classification"], TEXT, target=(6, "B-PER"), steps=8)
    assert ner["position"] == 6 and ner["target"] == "B-PER" and ner["tokens"][6] == "film"
    logits = np.asarray(tiny_models["token_classification"](ner["inputs"]), np.float64)
    np.testing.assert_allclose(ner["prediction"], _softmax(logits)[0, 6, 1], atol=1e-6)
    qa = tiny_models["question_answering"]
    start = explain.integrated_gradients(qa, target="start", steps=8, **KIND_ARGS["question_answering"])
    end = explain.integrated_gradients(qa, target="end", steps=8, **KIND_ARGS["question_answering"])
    outputs = qa(start["inputs"])
    assert start["position"] == int(np.argmax(outputs["start_logits"][0]))
    assert end["position"] == int(np.argmax(outputs["end_logits"][0]))


@pytest.mark.parametrize("kind,kwargs,message", [
    ("classification", dict(text="", ), "text is empty"),
    ("classification", dict(text="   "), "text is empty"),
    ("classification", dict(text="good", text_pair=" "), "text_pair is empty"),
    ("classification", dict(text="good", target="great"), r"target 'great' is not one of the model's labels \['neg', 'neu', 'pos'\]"),
    ("classification", dict(text="good", target=7), r"target 7 is not a label id in \[0, 3\)"),
    ("regression", dict(text="good", target="pos"), "regression model has one target"),
    ("token_classification", dict(text="good", target=(40, "O")), r"target token 40 is not a token index"),
    ("token_classification", dict(text="good", target=(1, "B-LOC")), "not one of the model's tags"),
    ("question_answering", dict(text="who", text_pair="ann", target="middle"), "'start' or 'end'"),
    ("embedding", dict(text="good"), "pass text_pair"),
    ("fill_mask", dict(text="good"), "a fill_mask model .BertPretrainer. has no attribution target"),
])
def test_bad_input_is_one_clear_error(tiny_models, kind, kwargs, message):
    with pytest.raises(explain.ExplainError, match=message) as error:
        explain.integrated_gradients(tiny_models[kind], steps=2, **kwargs)
    assert "\n" not in str(error.value)


def test_attention_maps(tiny_models):
    model = tiny_models["classification"]
    inputs = model.preprocessor(["the film is good", "bad"])
    maps = explain.attention_maps(model, {k: np.asarray(v) for k, v in inputs.items()})
    assert maps.shape == (2, 2, 2, 6, 6)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert np.all(maps[:, 1, :, :, 3:] == 0)  # "bad" is [CLS] bad [SEP] + 3 pads


def _sharp_step(alphas, centre, sharpness=300.0):
    """f(alpha) = sigmoid(sharpness * (alpha - centre)), the shape of a confident classifier's path."""
    return 1.0 / (1.0 + np.exp(-sharpness * (np.asarray(alphas, np.float64) - centre)))


def test_adaptive_nodes_resolve_a_sharp_step():
    # Two examples whose output jumps at different places along the path; 50 gradient points each.
    centres = np.array([0.31, 0.83])
    probes = np.linspace(0.0, 1.0, explain.PROBES + 1)
    probe_values = tf.constant(_sharp_step(probes[:, None], centres[None]), tf.float32)
    alphas, weights = (np.asarray(t, np.float64) for t in explain.adaptive_nodes(probe_values, 50))
    assert alphas.shape == weights.shape == (50, 2)
    np.testing.assert_allclose(weights.sum(0), 1.0, atol=1e-5)
    assert (alphas > 0).all() and (alphas < 1).all() and (np.diff(alphas, axis=0) > 0).all()

    def derivative(a, centre):
        f = _sharp_step(a, centre)
        return 300.0 * f * (1 - f)

    nodes, node_weights = explain.quadrature(50)
    for example, centre in enumerate(centres):
        exact = _sharp_step(1.0, centre) - _sharp_step(0.0, centre)
        adaptive = np.sum(weights[:, example] * derivative(alphas[:, example], centre))
        plain = np.sum(node_weights * derivative(nodes.astype(np.float64), centre))
        assert abs(adaptive - exact) <= 0.01 * abs(exact), (centre, adaptive, exact)
        assert abs(adaptive - exact) < abs(plain - exact), (centre, adaptive, plain, exact)


def test_methods_agree_on_a_smooth_model(tiny_models):
    model = tiny_models["classification"]
    adaptive = explain.integrated_gradients(model, TEXT, steps=50, method="adaptive")
    plain = explain.integrated_gradients(model, TEXT, steps=50, method="gausslegendre")
    assert adaptive["method"] == "adaptive" and plain["method"] == "gausslegendre"
    np.testing.assert_allclose(adaptive["attributions"], plain["attributions"], atol=1e-4)
    np.testing.assert_allclose(adaptive["prediction"], plain["prediction"], atol=1e-6)
    with pytest.raises(explain.ExplainError, match="method must be one of adaptive, gausslegendre"):
        explain.integrated_gradients(model, TEXT, method="riemann")
