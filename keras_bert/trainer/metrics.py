"""Task metrics in plain numpy: accuracy, F1, official SQuAD v1.1 EM/F1, entity-level F1, Pearson/Spearman."""

import collections
import re
import string

import numpy as np


def accuracy(labels, predictions):
    """Share of equal entries."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions)) if labels.size else 0.0


def binary_f1(labels, predictions, positive=1):
    """F1 of the `positive` class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def macro_f1(labels, predictions):
    """Unweighted mean of per-class F1 over the classes present in `labels` or `predictions`."""
    classes = np.union1d(np.unique(labels), np.unique(predictions))
    return float(np.mean([binary_f1(labels, predictions, c) for c in classes])) if classes.size else 0.0


def pearson(x, y):
    """Pearson correlation coefficient (as `scipy.stats.pearsonr`).

    NaN when an input holds a NaN (scipy's default); 0.0, not scipy's NaN, when an input is constant.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / max(np.sqrt((x * x).sum() * (y * y).sum()), 1e-12))


def _ranks(values):
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):  # Ties share their mean rank.
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y):
    """Spearman rank correlation (Pearson of the ranks, ties averaged), as `scipy.stats.spearmanr`.

    NaN when an input holds a NaN (scipy's default `nan_policy="propagate"`).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return pearson(_ranks(x), _ranks(y))


# --- SQuAD v1.1 (the official evaluate-v1.1.py definitions) ---

def normalize_answer(text):
    """Lower text and remove punctuation, articles and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction, ground_truth):
    """Token-overlap F1 between normalized answers."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction, ground_truth):
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def squad_scores(predictions, answers):
    """Official SQuAD v1.1 `exact_match` and `f1` in percent (max over the ground truths).

    A question of `answers` without a prediction scores 0 for both, as in the official script (not
    the score of an empty answer, which matches a ground truth such as "The" that normalizes to "").
    Predictions for ids not in `answers` are ignored.

    Args:
        predictions: dict. Question id -> predicted text.
        answers: dict. Question id -> list of ground-truth texts.
    """
    exact, f1 = 0.0, 0.0
    for qid, truths in answers.items():
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        exact += max(squad_exact_match(prediction, t) for t in truths)
        f1 += max(squad_f1(prediction, t) for t in truths)
    total = max(len(answers), 1)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


# --- Entity-level F1 (the entities come from keras_bert.tasks.token_classification.group_entities) ---

def entity_set_scores(true_entities, predicted_entities):
    """Micro precision, recall and F1 of two sets of entities (any hashable spans)."""
    correct = len(set(true_entities) & set(predicted_entities))
    precision = correct / max(len(predicted_entities), 1)
    recall = correct / max(len(true_entities), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1}
