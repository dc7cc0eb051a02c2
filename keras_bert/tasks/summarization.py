"""The `summarization` task: extractive summaries of long documents (BertSum over chunked windows).

Data: ACLSum JSON lines (human highlights per aspect; aspects and sections selectable), or generic JSON
lines `{"sentences": [...], "labels": [...]}` / `{"text": "...", "summary": "..."}` (sentence splitting and
greedy-ROUGE oracle labels). Metrics: ROUGE-1/2/Lsum F1 (Google's `rouge-score`, stemming) against the
reference summaries, precision/recall/F1 of the selected sentences against the labels, and sentence-level
precision/recall/F1 (every sentence classified by a score threshold, `sentence_metrics`). Selection (top-k
or threshold, trigram blocking, document order) is the same in Python and in the exported graph.
"""

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf

from keras_bert.data.errors import DataError, read_json_lines
from keras_bert.models.summarizer import CHUNK_INPUTS, INPUTS, SENTENCE_INPUTS, BertExtractiveSummarizer
from keras_bert.tasks import base

FORMATS = ("jsonl",)
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
DEFAULT_ASPECT = "summary"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")
# The sigmoid's own decision threshold: the jobs classify sentences at it when the config sets no `threshold`.
DECISION_THRESHOLD = 0.5
# Text without newlines is split after . ! ? (and closing quotes/brackets) followed by whitespace and an
# upper-case letter, digit or opening quote/bracket. The same RE2/Python pattern runs in the exported graph.
SENTENCE_BOUNDARY = r"([.!?][\"')\]]*)[ \t\r\f\v]+([A-Z0-9\"'(\[])"
_BOUNDARY_REWRITE = "\\1\n\\2"  # A real newline between the groups (RE2 rewrites know no \\n escape).
_EDGE_SPACE = r"^[ \t\r\f\v]+|[ \t\r\f\v]+$"
# Levels of the pointer-doubling chunk assignment in the graph: up to 2**12 chunks per document.
_CHUNK_LEVELS = 12


# --- Sentences and chunks ---

def split_sentences(text):
    """The sentences of `text`: a newline always ends one; a line is split at `SENTENCE_BOUNDARY` only when
    the text has no newline. Empty sentences are dropped (as in the exported graph).

    Example:
    >>> split_sentences("It works. We tested it (twice)! See e.g. this one")
    ['It works.', 'We tested it (twice)!', 'See e.g. this one']
    >>> split_sentences("One line. Still one\\nTwo")
    ['One line. Still one', 'Two']
    """
    if "\n" not in text:
        text = re.sub(SENTENCE_BOUNDARY, _BOUNDARY_REWRITE, text)
    parts = (re.sub(_EDGE_SPACE, "", part) for part in text.split("\n"))
    return [part for part in parts if part]


def chunk_sentences(lengths, window):
    """Greedy chunks of whole sentences: `(chunk, position)` of each sentence's first piece.

    Args:
        lengths: list of int. Pieces per sentence, `[CLS]` and `[SEP]` included, each at most `window`.
        window: int. Most pieces per chunk.
    """
    chunk, used, slots = 0, 0, []
    for length in lengths:
        if used and used + length > window:
            chunk, used = chunk + 1, 0
        slots.append((chunk, used))
        used += length
    return slots


def sentence_pieces(tokenizer, sentences, window):
    """`[CLS] pieces [SEP]` ids of each sentence, the pieces cut to `window - 2` (the only cut)."""
    if not sentences:
        return []
    ids = tokenizer(tf.constant(sentences, tf.string)).to_list()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [[cls] + list(p[:window - 2]) + [sep] for p in ids]


def document_features(pieces, window, max_chunks=None):
    """The model inputs of one document (numpy, unbatched): chunks `[chunks, seq]`, sentence slots `[sentences]`.

    Args:
        pieces: list of int lists, `sentence_pieces` of the document.
        window: int. Most pieces per chunk.
        max_chunks: int or None. Keep only the first chunks (sentences after them are masked out): the
            truncated baseline; None keeps everything.
    """
    slots = chunk_sentences([len(p) for p in pieces], window)
    if max_chunks is not None:
        kept = [i for i, (chunk, _) in enumerate(slots) if chunk < max_chunks]
    else:
        kept = list(range(len(slots)))
    chunks = max([slots[i][0] for i in kept], default=0) + 1
    width = max(1, max((slots[i][1] + len(pieces[i]) for i in kept), default=1))
    token_ids = np.zeros((chunks, width), np.int32)
    segment_ids = np.zeros((chunks, width), np.int32)
    for i in kept:
        chunk, start = slots[i]
        token_ids[chunk, start:start + len(pieces[i])] = pieces[i]
        segment_ids[chunk, start:start + len(pieces[i])] = i % 2
    mask = np.zeros(len(pieces), np.int32)
    mask[kept] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": (token_ids > 0).astype(np.int32),
            "sentence_chunk": np.array([s[0] for s in slots], np.int32) * mask,
            "sentence_position": np.array([s[1] for s in slots], np.int32) * mask, "sentence_mask": mask}


# --- Documents ---

@dataclasses.dataclass
class Document:
    """One document: its sentences, 0/1 labels and reference summary per aspect (either may be None)."""

    id: str
    sentences: list
    labels: dict
    references: dict


def _field(path, line, record, key, kind, where=None):
    value = (where if where is not None else record).get(key) if isinstance(where if where is not None else record,
                                                                            dict) else None
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"{path}:{line}: field {key!r} must be a {name}, got {type(value).__name__}")
    return value


def _sentence_list(path, line, value, field):
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise DataError(f"{path}:{line}: field {field!r} must be a list of strings")
    return value


def _label_list(path, line, value, field, count):
    if not isinstance(value, list) or not all(v in (0, 1) and not isinstance(v, float) or v in (0.0, 1.0)
                                              for v in value):
        raise DataError(f"{path}:{line}: field {field!r} must be a list of 0/1 labels")
    if len(value) != count:
        raise DataError(f"{path}:{line}: field {field!r} has {len(value)} labels for {count} sentences")
    return [int(v) for v in value]


def _aclsum(path, line, record, aspects, sections):
    sentences_by_section = _field(path, line, record, "sentences", dict)
    highlights = _field(path, line, record, "highlights", dict)
    summaries = record.get("summary") or {}
    sections = sections or [s for s in ACLSUM_SECTIONS if s in sentences_by_section]
    aspects = aspects or sorted(highlights)
    sentences, labels = [], {a: [] for a in aspects}
    for section in sections:
        if section not in sentences_by_section:
            raise DataError(f"{path}:{line}: field 'sentences' has no section {section!r} "
                            f"(it has {sorted(sentences_by_section)})")
        part = _sentence_list(path, line, sentences_by_section[section], f"sentences.{section}")
        sentences += part
        for aspect in aspects:
            if not isinstance(highlights.get(aspect), dict):
                raise DataError(f"{path}:{line}: field 'highlights' has no aspect {aspect!r} "
                                f"(it has {sorted(highlights)})")
            labels[aspect] += _label_list(path, line, highlights[aspect].get(section),
                                          f"highlights.{aspect}.{section}", len(part))
    references = {a: summaries.get(a) if isinstance(summaries, dict) else None for a in aspects}
    return Document(str(record.get("id", line)), sentences, labels, references)


def _generic(path, line, record, aspects, oracle_sentences):
    if "sentences" in record:
        sentences = _sentence_list(path, line, record["sentences"], "sentences")
    elif "text" in record:
        sentences = split_sentences(_field(path, line, record, "text", str))
    else:
        raise DataError(f"{path}:{line}: a record needs 'sentences' (with 'labels') or 'text' (with 'summary')")
    if not sentences:
        raise DataError(f"{path}:{line}: field {'sentences' if 'sentences' in record else 'text'!r} has no sentence")
    summary = record.get("summary")
    if summary is not None and not isinstance(summary, (str, dict)):
        raise DataError(f"{path}:{line}: field 'summary' must be a string or an {{aspect: string}} object")
    raw_labels = record.get("labels")
    if isinstance(raw_labels, dict):
        names = list(raw_labels)
    elif isinstance(summary, dict):
        names = list(summary)
    else:
        names = [DEFAULT_ASPECT]
    aspects = aspects or names
    labels, references = {}, {}
    for aspect in aspects:
        reference = summary.get(aspect) if isinstance(summary, dict) else summary
        if reference is not None and not isinstance(reference, str):
            raise DataError(f"{path}:{line}: field 'summary.{aspect}' must be a string")
        references[aspect] = reference
        value = raw_labels.get(aspect) if isinstance(raw_labels, dict) else raw_labels
        if isinstance(raw_labels, dict) and aspect not in raw_labels:
            raise DataError(f"{path}:{line}: field 'labels' has no aspect {aspect!r}")
        if value is not None:
            labels[aspect] = _label_list(path, line, value, "labels" if not isinstance(raw_labels, dict)
                                         else f"labels.{aspect}", len(sentences))
        elif reference is not None:
            labels[aspect] = oracle_labels(sentences, reference, oracle_sentences)
        else:
            raise DataError(f"{path}:{line}: field 'labels' or 'summary' is needed (aspect {aspect!r})")
    return Document(str(record.get("id", line)), sentences, labels, references)


def read_documents(path, aspects=None, sections=None, oracle_sentences=3, limit=None):
    """Reads summarization documents from JSON lines (ACLSum records, or the generic formats).

    Args:
        path: str. The file.
        aspects: list of str or None. ACLSum: which aspects (None: all of the file); generic: the label keys.
        sections: list of str or None. ACLSum: which sections, in this order (None: abstract, introduction,
            conclusion).
        oracle_sentences: int. Most sentences of a greedy-ROUGE oracle label set.
        limit: int or None. Read only the first N documents.

    Returns:
        list of `Document`; a bad record is a `DataError` naming file, line and field.
    """
    documents = []
    for line, record in read_json_lines(path):
        if record is None:
            continue
        if "highlights" in record:
            documents.append(_aclsum(path, line, record, aspects, sections))
        else:
            documents.append(_generic(path, line, record, aspects, oracle_sentences))
        if documents[0].labels.keys() != documents[-1].labels.keys():
            raise DataError(f"{path}:{line}: aspects {sorted(documents[-1].labels)} differ from the first "
                            f"record's {sorted(documents[0].labels)}")
        if limit and len(documents) >= limit:
            break
    if not documents:
        raise DataError(f"{path}: no documents")
    return documents


# --- ROUGE ---

_SCORER = {}


def rouge_scorer():
    """Google's `rouge_score.RougeScorer` for ROUGE-1/2/Lsum with stemming."""
    if "scorer" not in _SCORER:
        from rouge_score import rouge_scorer as module

        _SCORER["scorer"] = module.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    return _SCORER["scorer"]


def rouge(summary_sentences, reference):
    """ROUGE-1/2/Lsum F1 (x100) of sentences against a reference (Lsum: both newline-joined)."""
    scores = rouge_scorer().score("\n".join(split_sentences(reference)), "\n".join(summary_sentences))
    return {name: 100.0 * scores[name].fmeasure for name in ROUGE_TYPES}


def oracle_labels(sentences, reference, most=3):
    """Greedy ROUGE oracle: add the sentence that most raises ROUGE-1 + ROUGE-2 F1, up to `most`, while it rises."""
    chosen, best = [], 0.0
    for _ in range(min(most, len(sentences))):
        candidates = []
        for i in range(len(sentences)):
            if i in chosen:
                continue
            scores = rouge([sentences[j] for j in sorted(chosen + [i])], reference)
            candidates.append((scores["rouge1"] + scores["rouge2"], i))
        score, index = max(candidates, key=lambda c: (c[0], -c[1]))
        if score <= best:
            break
        chosen.append(index)
        best = score
    return [int(i in chosen) for i in range(len(sentences))]


# --- Selection ---

def trigrams(sentence):
    """The word trigrams of a sentence (lower-cased, split at whitespace)."""
    words = sentence.lower().split()
    return set(zip(words, words[1:], words[2:]))


def select(scores, sentences, top_k=3, threshold=None, trigram_blocking=True):
    """Indices of the selected sentences in document order: the best-scoring first, at most `top_k`, each at
    least `threshold` (when given) and, with trigram blocking, sharing no word trigram with one chosen before.
    The exported graph selects the same way.

    Example:
    >>> select([0.9, 0.8, 0.1, 0.7], ["the cat sat on it", "a cat sat on it", "no", "dogs bark"], top_k=2)
    [0, 3]
    """
    chosen, seen = [], set()
    for index in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
        if len(chosen) >= top_k or (threshold is not None and scores[index] < threshold):
            break
        grams = trigrams(sentences[index]) if trigram_blocking else set()
        if grams & seen:
            continue
        chosen.append(index)
        seen |= grams
    return sorted(chosen)


def sentence_counts(selected, labels):
    """`(true positives, predicted, gold)` of selected indices against 0/1 labels."""
    gold = {i for i, label in enumerate(labels) if label}
    return len(gold & set(selected)), len(selected), len(gold)


def prf(true_positives, predicted, gold):
    """Precision, recall, F1 (x100, Python floats) from counts."""
    precision = 100.0 * float(true_positives) / float(predicted) if predicted else 0.0
    recall = 100.0 * float(true_positives) / float(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def highlighted(scores, threshold, scored=None):
    """Indices of the sentences predicted highlighted: scored and scoring at least `threshold`.

    Args:
        scores: list of float. One score per sentence.
        threshold: float. The decision threshold.
        scored: list of bool or None. Which sentences the model saw (a truncated input scores only its first
            window); None: all. A sentence not scored is never predicted.

    Example:
    >>> highlighted([0.9, 0.2, 0.6], 0.5), highlighted([0.9, 0.2, 0.6], 0.5, scored=[True, True, False])
    ([0, 2], [0])
    """
    return [i for i, s in enumerate(scores) if (scored is None or scored[i]) and float(s) >= threshold]


def choose_threshold(scores, labels, scored=None):
    """The decision threshold with the best sentence F1 over all the sentences of all the documents (val).

    Every distinct score of a scored sentence is a candidate cut (predict the sentences scoring at least it);
    the best F1 wins, ties go to the higher cut, and the threshold returned is halfway between that cut and
    the next lower scored value (so unseen scores fall on the side of the nearer val score). Highlights of
    sentences not scored count in the recall's denominator, so a truncated input pays for what it cannot see.

    Args:
        scores: list (per document) of float lists.
        labels: list (per document) of 0/1 lists.
        scored: list (per document) of bool lists, or None (all scored).

    Returns:
        `(threshold, f1)`: the threshold and its F1 (x100) on these documents; with no highlighted sentence,
        the highest score and 0.

    Example:
    >>> choose_threshold([[0.9, 0.7, 0.8], [0.2, 0.1]], [[1, 1, 0], [1, 0]])
    (0.15000000000000002, 85.71428571428571)
    """
    pairs, gold = [], 0
    for number, (row, label) in enumerate(zip(scores, labels)):
        seen = scored[number] if scored is not None else [True] * len(row)
        gold += sum(int(v) for v in label)
        pairs += [(float(s), int(v)) for s, v, k in zip(row, label, seen) if k]
    values = sorted({s for s, _ in pairs}, reverse=True)
    if not values:
        raise ValueError("choose_threshold: no scored sentence")
    positives = {}
    counts = {}
    for s, v in pairs:
        counts[s] = counts.get(s, 0) + 1
        positives[s] = positives.get(s, 0) + v
    best, true_positives, predicted = (-1.0, 0), 0, 0
    for j, value in enumerate(values):
        true_positives += positives[value]
        predicted += counts[value]
        f1 = prf(true_positives, predicted, gold)[2]
        if f1 > best[0]:
            best = (f1, j)
    f1, j = best
    if gold == 0:
        return values[0], 0.0
    threshold = (values[j] + values[j + 1]) / 2 if j + 1 < len(values) else values[j]
    return threshold, f1


def sentence_metrics(documents, scores, aspects, thresholds, scored=None):
    """Sentence-level precision/recall/F1 (x100) against the labels: the sentence classification metric.

    A sentence is predicted highlighted when its score is at least its aspect's threshold (`highlighted`);
    the counts are pooled over all the sentences of all the documents (micro average).

    Args:
        documents: list of `Document`.
        scores: list (per document) of `{aspect: float scores}`.
        aspects: list of str.
        thresholds: float (every aspect) or `{aspect: float}`.
        scored: list (per document) of bool lists, or None (all scored).

    Returns:
        `{aspect}_sentence_precision/recall/f1`, `{aspect}_sentence_threshold` and the mean `sentence_f1`.

    Example:
    >>> doc = Document("d", ["a", "b", "c"], {"x": [1, 0, 1]}, {"x": None})
    >>> m = sentence_metrics([doc], [{"x": [0.9, 0.6, 0.1]}], ["x"], 0.5)
    >>> [round(m[k], 2) for k in ("x_sentence_precision", "x_sentence_recall", "x_sentence_f1")]
    [50.0, 50.0, 50.0]
    """
    metrics = {}
    for aspect in aspects:
        threshold = float(thresholds[aspect] if isinstance(thresholds, dict) else thresholds)
        counts = [sentence_counts(highlighted(s[aspect], threshold, scored[n] if scored is not None else None),
                                  d.labels[aspect]) for n, (d, s) in enumerate(zip(documents, scores))
                  if aspect in d.labels]
        if counts:
            p, r, f = prf(*np.sum(counts, axis=0))
            metrics.update({f"{aspect}_sentence_precision": p, f"{aspect}_sentence_recall": r,
                            f"{aspect}_sentence_f1": f, f"{aspect}_sentence_threshold": threshold})
    values = [metrics[f"{a}_sentence_f1"] for a in aspects if f"{a}_sentence_f1" in metrics]
    if values:
        metrics["sentence_f1"] = float(np.mean(values))
    return metrics


def score_selections(documents, selections, aspects):
    """Metrics of `selections` (`[{aspect: indices}]`, one per document): per aspect ROUGE-1/2/Lsum F1 against
    the references and the selected sentences' precision/recall/F1 against the labels
    (`{aspect}_selection_precision/recall/f1`: the summary's own sentences, not a per-sentence
    classification; that is `sentence_metrics`), and their means over aspects."""
    metrics = {}
    for aspect in aspects:
        rouges = [rouge([d.sentences[i] for i in s[aspect]], d.references[aspect])
                  for d, s in zip(documents, selections) if d.references.get(aspect)]
        for name in ROUGE_TYPES:
            if rouges:
                metrics[f"{aspect}_{name}"] = float(np.mean([r[name] for r in rouges]))
        counts = np.sum([sentence_counts(s[aspect], d.labels[aspect]) for d, s in zip(documents, selections)
                         if aspect in d.labels], axis=0)
        if np.ndim(counts):
            p, r, f = prf(*counts)
            metrics.update({f"{aspect}_selection_precision": p, f"{aspect}_selection_recall": r,
                            f"{aspect}_selection_f1": f})
    for name in ROUGE_TYPES + ("selection_f1",):
        values = [metrics[f"{a}_{name}"] for a in aspects if f"{a}_{name}" in metrics]
        if values:
            metrics[name] = float(np.mean(values))
    return metrics


# --- Batches ---

def encode_documents(tokenizer, documents, window, max_chunks=None):
    """`document_features` of each document (sentence lists)."""
    return [document_features(sentence_pieces(tokenizer, d, window), window, max_chunks) for d in documents]


def features_dataset(features, labels=None, aspects=(), batch_size=4, shuffle=False, seed=0, drop_remainder=False):
    """A `tf.data.Dataset` of padded document batches (labels padded with -1), in order unless shuffled.

    Pure tf.data (ragged slices made dense per document, then padded per batch), so a checkpoint can save the
    iterator; a document's chunks are padded only to its batch's widest chunk.
    """
    def chunks(name):
        values = np.concatenate([f[name].reshape(-1) for f in features])
        chunk_counts = [f[name].shape[0] for f in features]
        widths = np.concatenate([[f[name].shape[1]] * f[name].shape[0] for f in features])
        return tf.RaggedTensor.from_nested_row_lengths(tf.constant(values, tf.int32), [chunk_counts, widths])

    def slots(rows, dtype):
        return tf.RaggedTensor.from_row_lengths(tf.constant(np.concatenate(rows), dtype), [len(r) for r in rows])

    x = {name: chunks(name) for name in CHUNK_INPUTS}
    x.update({name: slots([f[name] for f in features], tf.int32) for name in SENTENCE_INPUTS})
    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(x)
    else:
        y = {a: slots([np.asarray(row[a], np.float32) for row in labels], tf.float32) for a in aspects}
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)

    def dense(*element):
        return tuple(keras_tree_dense(e) for e in element) if len(element) > 1 else keras_tree_dense(element[0])

    dataset = dataset.map(dense)
    padding = {name: tf.constant(0, tf.int32) for name in INPUTS}
    if labels is not None:
        padding = (padding, {a: tf.constant(-1.0, tf.float32) for a in aspects})
    return dataset.padded_batch(batch_size, padding_values=padding, drop_remainder=drop_remainder).prefetch(2)


def keras_tree_dense(values):
    """Ragged values of a dict made dense (a document's chunks padded to its widest)."""
    return {k: v.to_tensor() if isinstance(v, tf.RaggedTensor) else v for k, v in values.items()}


def predict_scores(model, dataset, counts):
    """Per document `{aspect: float scores [sentences]}` (the model's outputs, padding cut off)."""
    rows = []
    for x in dataset:
        x = x[0] if isinstance(x, tuple) else x
        outputs = base.forward(model)(x)
        batch = {a: np.asarray(v) for a, v in outputs.items()}
        for b in range(len(next(iter(batch.values())))):
            count = counts[len(rows)]
            rows.append({a: v[b, :count] for a, v in batch.items()})
    return rows


def _as_documents(documents):
    if isinstance(documents, (str, bytes)):
        documents = [documents]
    return [split_sentences(d.decode("utf-8") if isinstance(d, bytes) else d) if isinstance(d, (str, bytes))
            else [str(s) for s in d] for d in documents]


def summaries(sentence_lists, scores, aspects, top_k=3, threshold=None, trigram_blocking=True):
    """The output format of every summarizer: per document `{aspect: {"indices", "scores", "summary",
    "sentences"}}`."""
    rows = []
    for sentences, score in zip(sentence_lists, scores):
        row = {}
        for aspect in aspects:
            values = [float(v) for v in score[aspect]]
            indices = select(values, sentences, top_k, threshold, trigram_blocking)
            row[aspect] = {"indices": indices, "scores": values,
                           "summary": "\n".join(sentences[i] for i in indices), "sentences": sentences}
        rows.append(row)
    return rows


def summarize(model, documents, top_k=3, threshold=None, trigram_blocking=True, batch_size=4, max_chunks=None):
    """`BertExtractiveSummarizer.summarize`: summaries of text documents (see there)."""
    if model.preprocessor is None:
        raise ValueError("summarize needs a text-in model (from_pretrained, or one saved by training.finetune)")
    sentence_lists = _as_documents(documents)
    window = model.preprocessor.sequence_length
    features = encode_documents(model.preprocessor.tokenizer, sentence_lists, window, max_chunks)
    scores = predict_scores(model, features_dataset(features, batch_size=batch_size), [len(s) for s in sentence_lists])
    return summaries(sentence_lists, scores, model.aspects, top_k, threshold, trigram_blocking)


# --- Unsupervised ---

def unsupervised_scores(embedder, sentence_lists, top_k=3, method="kmeans", seed=0, batch_size=32):
    """Per document `{"summary": scores}` from sentence embeddings, no labels needed.

    `centroid`: cosine similarity to the document's mean embedding. `kmeans`: k-means with `top_k`
    centres (k-means++ start); the sentence nearest each centre scores 2 minus its distance, the rest score
    minus their distance, so top-k selection keeps one sentence per cluster.

    Args:
        embedder: text-in `BertEmbedder` (see `from_pretrained`).
        sentence_lists: list of sentence lists.
        top_k: int. Clusters.
        method: str. `kmeans` or `centroid`.
        seed: int. k-means initialisation.
        batch_size: int. Sentences per embedder call.
    """
    if method not in ("kmeans", "centroid"):
        raise ValueError(f"method must be 'kmeans' or 'centroid', got {method!r}")
    flat = [s for sentences in sentence_lists for s in sentences]
    vectors = np.asarray(embedder.predict(flat, batch_size=batch_size, verbose=0), np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows, start = [], 0
    rng = np.random.default_rng(seed)
    for sentences in sentence_lists:
        x = vectors[start:start + len(sentences)]
        start += len(sentences)
        if method == "centroid":
            centre = x.mean(axis=0)
            rows.append({DEFAULT_ASPECT: x @ (centre / max(np.linalg.norm(centre), 1e-12))})
            continue
        k = min(top_k, len(x))
        centres = x[[rng.integers(len(x))]]
        while len(centres) < k:  # k-means++
            distance = np.min(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
            centres = np.vstack([centres, x[rng.choice(len(x), p=distance / distance.sum())
                                            if distance.sum() > 0 else rng.integers(len(x))]])
        for _ in range(50):
            assignment = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
            updated = np.array([x[assignment == c].mean(0) if np.any(assignment == c) else centres[c]
                                for c in range(k)])
            if np.allclose(updated, centres):
                break
            centres = updated
        distance = np.sqrt(((x[:, None] - centres[None]) ** 2).sum(-1))
        score = -distance.min(axis=1)
        for c in range(k):
            score[np.argmin(distance[:, c])] = 2.0 - distance[:, c].min()
        rows.append({DEFAULT_ASPECT: score})
    return rows


def unsupervised_summarize(embedder, documents, top_k=3, method="kmeans", trigram_blocking=False, seed=0):
    """Summaries without labels (centroid or k-means over `BertEmbedder` sentence embeddings), in the output
    format of `BertExtractiveSummarizer.summarize` with the one aspect `summary`.

    Example (needs a model directory):

        embedder = keras_bert.BertEmbedder.from_pretrained(DIR)
        unsupervised_summarize(embedder, ["First sentence. Second one. Third one."], top_k=2)
    """
    sentence_lists = _as_documents(documents)
    scores = unsupervised_scores(embedder, sentence_lists, top_k, method, seed)
    return summaries(sentence_lists, scores, [DEFAULT_ASPECT], top_k, None, trigram_blocking)


# --- In the exported graph ---

def graph_sentences(text):
    """Ragged `[batch, (sentences)]` strings: `split_sentences` with TF Serving ops."""
    has_newline = tf.strings.regex_full_match(text, "(?s).*\n.*")
    text = tf.where(has_newline, text, tf.strings.regex_replace(text, SENTENCE_BOUNDARY, _BOUNDARY_REWRITE))
    parts = tf.strings.split(text, "\n")
    parts = tf.strings.regex_replace(parts, _EDGE_SPACE, "")
    return tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)


def graph_chunks(lengths, mask, window):
    """`(chunk, start)` of each sentence `[batch, S]`: `chunk_sentences` by pointer doubling (no loops).

    `next[i]` is the first sentence of the chunk after one starting at sentence i; the chunk of sentence j
    is the number of jumps from sentence 0 that stay at or before j.
    """
    lengths = tf.cast(lengths, tf.int64) * tf.cast(mask, tf.int64)
    batch, count = tf.shape(lengths, out_type=tf.int64)[0], tf.shape(lengths, out_type=tf.int64)[1]
    cum = tf.concat([tf.zeros([batch, 1], tf.int64), tf.cumsum(lengths, axis=1)], axis=1)  # [b, S+1]
    # Largest j with cum[j] <= cum[i] + window; a chunk holds at least one sentence.
    last = tf.searchsorted(cum, cum + window + 1, side="left", out_type=tf.int64) - 1
    index = tf.range(count + 1)[tf.newaxis, :]
    jump = tf.minimum(tf.maximum(last, index + 1), count)
    jumps = [jump]
    for _ in range(_CHUNK_LEVELS - 1):
        jumps.append(tf.gather(jumps[-1], jumps[-1], batch_dims=1))
    sentence = tf.broadcast_to(tf.range(count)[tf.newaxis, :], [batch, count])
    start = tf.zeros_like(sentence)
    chunk = tf.zeros_like(sentence)
    for level in reversed(range(_CHUNK_LEVELS)):
        candidate = tf.gather(jumps[level], start, batch_dims=1)
        take = candidate <= sentence
        start = tf.where(take, candidate, start)
        chunk = chunk + tf.cast(take, tf.int64) * (2 ** level)
    position = tf.gather(cum, sentence, batch_dims=1) - tf.gather(cum, start, batch_dims=1)
    return chunk, position


def graph_features(tokenizer, sentences, window):
    """The model inputs of ragged sentences `[batch, (S)]`, as `document_features` builds them."""
    flat = sentences.flat_values
    pieces = tf.cast(tokenizer(flat), tf.int64)
    kept = tf.minimum(pieces.row_lengths(), window - 2)
    lengths = kept + 2  # [N]
    # [CLS] pieces [SEP] of every sentence, built by position (no ragged concat).
    position = tf.ragged.range(lengths)
    rows = tf.cast(position.value_rowids(), tf.int64)
    offsets = position.flat_values
    piece_index = tf.gather(pieces.row_splits, rows) + tf.maximum(offsets - 1, 0)
    values = tf.gather(tf.concat([pieces.flat_values, tf.zeros([1], tf.int64)], 0),
                       tf.minimum(piece_index, tf.size(pieces.flat_values, out_type=tf.int64)))
    last = offsets == tf.gather(lengths, rows) - 1
    tokens = tf.where(offsets == 0, tf.constant(tokenizer.cls_token_id, tf.int64),
                      tf.where(last, tf.constant(tokenizer.sep_token_id, tf.int64), values))
    sentence_ragged = tf.RaggedTensor.from_row_splits(lengths, sentences.row_splits)
    dense_lengths = sentence_ragged.to_tensor()
    mask = tf.sequence_mask(sentence_ragged.row_lengths(), tf.shape(dense_lengths, out_type=tf.int64)[1])
    chunk, start = graph_chunks(dense_lengths, mask, window)
    # Sentence index within its document (segment ids alternate by sentence).
    in_doc = tf.ragged.range(sentences.row_lengths()).flat_values
    chunks_per_doc = tf.maximum(tf.reduce_max(tf.where(mask, chunk + 1, 0), axis=1), 1)
    doc_first_chunk = tf.cumsum(chunks_per_doc, exclusive=True)
    flat_chunk = tf.gather(doc_first_chunk, sentences.value_rowids()) + tf.RaggedTensor.from_tensor(
        chunk, lengths=sentences.row_lengths()).flat_values
    total_chunks = tf.reduce_sum(chunks_per_doc)
    tokens_per_chunk = tf.math.unsorted_segment_sum(lengths, flat_chunk, total_chunks)
    parity = tf.gather(in_doc % 2, rows)

    def dense(flat_values):
        ragged = tf.RaggedTensor.from_nested_row_lengths(flat_values, [chunks_per_doc, tokens_per_chunk])
        return tf.cast(ragged.to_tensor(), tf.int32)

    def widen(ids):  # At least one column, for a batch of empty documents.
        shape = tf.shape(ids)
        return tf.concat([ids, tf.zeros([shape[0], shape[1], tf.maximum(1 - shape[2], 0)], tf.int32)], axis=2)

    return {"token_ids": widen(dense(tokens)), "segment_ids": widen(dense(parity)),
            "padding_mask": widen(dense(tf.ones_like(tokens))),
            "sentence_chunk": tf.cast(chunk, tf.int32) * tf.cast(mask, tf.int32),
            "sentence_position": tf.cast(start, tf.int32) * tf.cast(mask, tf.int32),
            "sentence_mask": tf.cast(mask, tf.int32)}


def graph_select(scores, sentences, mask, top_k, threshold=None, trigram_blocking=True):
    """`select` in the graph: `(indices [batch, top_k] int32, -1 padded, in document order; summary [batch])`.

    Args:
        scores: float `[batch, S]`.
        sentences: string `[batch, S]` (dense, "" padded).
        mask: bool `[batch, S]`, real sentences.
    """
    batch = tf.shape(scores)[0]
    # top_k masked slots more, so that top_k always fits.
    scores = tf.concat([tf.cast(scores, tf.float32), tf.zeros([batch, top_k])], axis=1)
    mask = tf.concat([mask, tf.zeros([batch, top_k], tf.bool)], axis=1)
    sentences = tf.concat([sentences, tf.fill([batch, top_k], "")], axis=1)
    count = tf.shape(scores)[1]
    split = tf.strings.split(tf.strings.lower(tf.reshape(sentences, [-1]), encoding="utf-8"))
    words = tf.reshape(split.to_tensor(default_value=""), [batch, count, -1])
    width = tf.shape(words)[2]
    words = tf.concat([words, tf.fill([batch, count, 2], "")], axis=2)
    tail = tf.reshape(split.row_lengths(), [batch, count])
    # Trigram t of a sentence starts at word t; it exists when t + 2 < the sentence's word count.
    grams = [words[:, :, k:k + width] for k in range(3)]
    has_gram = tf.range(width, dtype=tf.int64)[tf.newaxis, tf.newaxis, :] + 2 < tail[:, :, tf.newaxis]
    index = tf.range(count)[tf.newaxis, :]
    selected = tf.zeros([batch, count], tf.bool)
    blocked = tf.zeros([batch, count], tf.bool)
    allowed = mask if threshold is None else mask & (scores >= threshold)
    for _ in range(top_k):
        available = allowed & ~selected & ~blocked
        found = tf.reduce_any(available, axis=1)
        pick = tf.argmax(tf.where(available, scores, -1.0), axis=1, output_type=tf.int32)
        hit = tf.equal(index, pick[:, tf.newaxis]) & found[:, tf.newaxis]
        selected = selected | hit
        if trigram_blocking:
            picked = [tf.gather(g, pick, batch_dims=1) for g in grams]  # [batch, width]
            picked_has = tf.gather(has_gram, pick, batch_dims=1)
            same = picked_has[:, tf.newaxis, :, tf.newaxis] & has_gram[:, :, tf.newaxis, :]
            for g, p in zip(grams, picked):
                same = same & tf.equal(p[:, tf.newaxis, :, tf.newaxis], g[:, :, tf.newaxis, :])
            blocked = blocked | (tf.reduce_any(same, axis=[2, 3]) & found[:, tf.newaxis])
    key = tf.where(selected, index, count + index)
    order = -tf.math.top_k(-key, k=top_k).values
    chosen = order < count
    indices = tf.where(chosen, order, -1)
    summary = tf.fill([batch], "")
    for t in range(top_k):
        text = tf.where(chosen[:, t], tf.gather(sentences, tf.maximum(indices[:, t], 0), batch_dims=1), "")
        separator = tf.where(chosen[:, t] & (tf.strings.length(summary) > 0), "\n", "")
        summary = tf.strings.join([summary, separator, text])
    return indices, summary


class Summarization(base.TaskKind):
    """Extractive summarization: per aspect ROUGE-1/2/Lsum and the selection's P/R/F1 of the top-k summary,
    and sentence P/R/F1 of every sentence classified at the decision threshold (`sentence_metrics`); exported
    summary text, selected indices and sentence scores per aspect."""

    name = "summarization"
    model_class = BertExtractiveSummarizer
    default_top_k = 3
    # The model's arguments a recipe may set (`training.finetune`'s `model_options`).
    model_options = ("num_inter_layers", "pooling", "positive_weight", "trainable_encoder_layers")

    def read(self, path, options, tokenizer, *, batch_size, training, labels=None, seed=0, limit=None,
             max_chunks=None):
        base.file_format(path, options.data_format, FORMATS)
        aspects = list(labels) if labels else options.aspects
        documents = read_documents(path, aspects, options.sections, options.oracle_sentences, limit)
        aspects = list(documents[0].labels)
        window = options.max_seq_length
        features = encode_documents(tokenizer, [d.sentences for d in documents], window, max_chunks)
        print(f"[data] {path}: {len(documents)} documents, {sum(len(d.sentences) for d in documents)} sentences, "
              f"{sum(len(f['token_ids']) for f in features)} windows of <= {window} pieces, aspects {aspects}")
        dataset = features_dataset(features, [d.labels for d in documents], aspects, batch_size, shuffle=training,
                                   seed=seed, drop_remainder=training)
        return base.TaskData(dataset, len(documents), documents, aspects, path)

    def build_model(self, encoder, labels, dropout=None, **options):
        """`BertExtractiveSummarizer` with one output per aspect; `options` are its `model_options` arguments."""
        return BertExtractiveSummarizer(encoder, aspects=list(labels or [DEFAULT_ASPECT]), dropout=dropout,
                                        **options)

    def predict(self, model, data):
        return predict_scores(model, data.dataset, [len(d.sentences) for d in data.reference])

    def evaluate(self, data, outputs, labels=None, options=None):
        top_k = options.top_k if options is not None else 3
        threshold = options.threshold if options is not None else None
        blocking = options.trigram_blocking if options is not None else True
        aspects = list(labels or data.labels)
        rows = summaries([d.sentences for d in data.reference], outputs, aspects, top_k, threshold, blocking)
        selections = [{a: row[a]["indices"] for a in aspects} for row in rows]
        metrics = score_selections(data.reference, selections, aspects)
        # Sentence P/R/F1: each sentence classified at the config's threshold, else the sigmoid's 0.5 (the
        # jobs have no second dev set to tune it on; benchmarks.aclsum chooses it on val).
        metrics.update(sentence_metrics(data.reference, outputs, aspects,
                                        DECISION_THRESHOLD if threshold is None else threshold))
        predictions = [{"id": d.id, **{a: {k: row[a][k] for k in ("indices", "scores", "summary")}
                                       for a in aspects}} for d, row in zip(data.reference, rows)]
        return metrics, predictions

    def write_predictions(self, output_dir, data, predictions, tokenizer=None):
        with open(os.path.join(output_dir, "predictions.jsonl"), "w", encoding="utf-8") as f:
            for row in predictions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        """Text in for `fit`: documents (str or sentence lists) and `y`, per document 0/1 labels (one aspect)
        or `{aspect: labels}`."""
        sentence_lists = _as_documents(x)
        features = encode_documents(model.preprocessor.tokenizer, sentence_lists, model.preprocessor.sequence_length)
        if y is None:
            return features_dataset(features, batch_size=batch_size)
        if len(y) != len(sentence_lists):
            raise ValueError(f"{len(sentence_lists)} documents but {len(y)} label lists")
        labels = []
        for number, (sentences, row) in enumerate(zip(sentence_lists, y)):
            row = row if isinstance(row, dict) else {model.aspects[0]: row}
            if set(row) != set(model.aspects):
                raise ValueError(f"labels[{number}]: aspects {sorted(row)}, the model has {model.aspects}")
            for aspect, values in row.items():
                if len(values) != len(sentences):
                    raise ValueError(f"labels[{number}][{aspect!r}]: {len(values)} labels for {len(sentences)} "
                                     "sentences")
            labels.append(row)
        return features_dataset(features, labels, model.aspects, batch_size, shuffle=shuffle, seed=seed or 0)

    # --- Export ---
    def postprocess(self, module, texts):
        sentences = graph_sentences(texts["text"])
        inputs = graph_features(module.tokenizer, sentences, module.max_length)
        outputs = module.run_model(inputs)
        dense_sentences = sentences.to_tensor(default_value="")
        mask = tf.cast(inputs["sentence_mask"], tf.bool)
        result = {}
        for aspect in module.model.aspects:
            scores = tf.cast(outputs[aspect], tf.float32)
            indices, summary = graph_select(scores, dense_sentences, mask, module.top_k)
            result.update({f"{aspect}_summary": summary, f"{aspect}_indices": indices,
                           f"{aspect}_scores": tf.where(mask, scores, -1.0)})
        result["num_sentences"] = tf.cast(sentences.row_lengths(), tf.int32)
        return result

    def id_signature(self, module):
        """`serve_ids`: the model's packed inputs (chunks `[docs, chunks, seq]`, sentence slots) -> scores."""
        def serve_ids(token_ids, segment_ids, padding_mask, sentence_chunk, sentence_position, sentence_mask):
            return module.predict_ids({"token_ids": token_ids, "segment_ids": segment_ids,
                                       "padding_mask": padding_mask, "sentence_chunk": sentence_chunk,
                                       "sentence_position": sentence_position, "sentence_mask": sentence_mask})
        specs = [tf.TensorSpec([None, None, None], tf.int32, name=n) for n in CHUNK_INPUTS]
        specs += [tf.TensorSpec([None, None], tf.int32, name=n) for n in SENTENCE_INPUTS]
        return tf.function(serve_ids, input_signature=specs)
