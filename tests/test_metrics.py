"""keras_bert.trainer.metrics against scikit-learn, scipy, seqeval and the official SQuAD v1.1 script.

The reference values are in tests/fixtures/metric_references.json, written by
tests/fixtures/make_metric_references.py in an environment with those packages (see its docstring).
"""

import json
import math
import pathlib

import numpy as np
import pytest

from keras_bert.trainer import metrics

REFERENCES = json.loads((pathlib.Path(__file__).parent / "fixtures" / "metric_references.json").read_text("utf-8"))


def _floats(values):
    return np.array([float(v) for v in values], np.float64)  # "nan" -> nan


def _assert_close(got, expected, name):
    expected = float(expected)
    if math.isnan(expected):
        assert math.isnan(got), (name, got)
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (name, got, expected)


def _ids(cases):
    return [c["name"] for c in cases]


@pytest.mark.parametrize("case", REFERENCES["classification"], ids=_ids(REFERENCES["classification"]))
def test_classification_matches_sklearn(case):
    labels, predictions = case["labels"], case["predictions"]
    _assert_close(metrics.accuracy(labels, predictions), case["accuracy"], "accuracy")
    _assert_close(metrics.binary_f1(labels, predictions, positive=case["positive"]), case["binary_f1"], "binary_f1")
    _assert_close(metrics.macro_f1(labels, predictions), case["macro_f1"], "macro_f1")


@pytest.mark.parametrize("case", REFERENCES["correlation"], ids=_ids(REFERENCES["correlation"]))
def test_correlations_match_scipy(case):
    labels, predictions = _floats(case["labels"]), _floats(case["predictions"])
    _assert_close(metrics.pearson(labels, predictions), case["pearson"], "pearson")
    _assert_close(metrics.spearman(labels, predictions), case["spearman"], "spearman")


def test_constant_input_correlation_is_zero():
    # scipy returns nan (with a ConstantInputWarning) for a constant input; keras_bert reports 0.0 so that
    # a collapsed regression head reads as "no correlation" in metrics.json and TensorBoard.
    assert metrics.pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == 0.0
    assert metrics.spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == 0.0


def test_squad_matches_official_script():
    squad = REFERENCES["squad"]
    got = metrics.squad_scores(squad["predictions"], squad["answers"])
    for key in ("exact_match", "f1"):
        _assert_close(got[key], squad["scores"][key], key)
    for qid, expected in squad["per_question"].items():
        one = metrics.squad_scores(squad["predictions"], {qid: squad["answers"][qid]})
        for key in ("exact_match", "f1"):
            _assert_close(one[key], expected[key], f"{qid} {key}")


def test_squad_pairs_match_official_script():
    for pair in REFERENCES["squad"]["pairs"]:
        prediction, truth = pair["prediction"], pair["truth"]
        assert metrics.normalize_answer(prediction) == pair["normalized_prediction"]
        assert metrics.normalize_answer(truth) == pair["normalized_truth"]
        _assert_close(metrics.squad_exact_match(prediction, truth), pair["exact_match"], f"EM {pair}")
        _assert_close(metrics.squad_f1(prediction, truth), pair["f1"], f"F1 {pair}")


def test_squad_missing_prediction_scores_zero_even_for_an_empty_truth():
    assert metrics.squad_scores({}, {"q": ["The"]}) == {"exact_match": 0.0, "f1": 0.0}
    assert metrics.squad_scores({"q": ""}, {"q": ["The"]})["exact_match"] == 100.0


def _entity_lists(tags):
    """The entities of one tag sequence as seqeval lists them: `(type, first, last)` in order."""
    from keras_bert.tasks.token_classification import TagTable, entities

    found = entities([tags], TagTable(sorted(set(tags)) or ["O"]))
    return sorted((kind, first, last) for _, kind, first, last in found)


@pytest.mark.parametrize("case", REFERENCES["entities"], ids=_ids(REFERENCES["entities"]))
def test_entities_match_seqeval(case):
    """The one entity grouping (evaluation and the exported graph) against seqeval's default mode."""
    from keras_bert.tasks.token_classification import entity_scores

    for kind in ("true", "predicted"):
        sequences = case["true"] if kind == "true" else case["predicted"]
        for tags, expected in zip(sequences, case["entities"][kind]):
            assert _entity_lists(tags) == sorted(tuple(e) for e in expected), (case["scheme"], tags)
    tags = sorted({t for s in case["true"] + case["predicted"] for t in s})
    got = entity_scores(case["true"], case["predicted"], tags)
    for key in ("precision", "recall", "f1"):
        _assert_close(got[key], case[key], key)


def test_entity_spans_of_each_scheme():
    assert _entity_lists(["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]) == [("LOC", 2, 4), ("PER", 0, 0)]
    assert _entity_lists(["U-PER", "B-LOC", "L-LOC", "U-ORG"]) == [("LOC", 1, 2), ("ORG", 3, 3), ("PER", 0, 0)]
    assert _entity_lists(["O", "I-PER", "I-PER", "B-PER"]) == [("PER", 1, 2), ("PER", 3, 3)]
