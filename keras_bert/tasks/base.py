"""`TaskKind`: what one kind of task owns (data, model, metrics, predictions, export post-processing)."""

import dataclasses
import json
import os
import typing
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_bert.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """How a task reads its files and packs its examples: the data keys of `training.finetune` and
    `training.evaluate`.

    Args:
        data_format: str. File format; `auto` tells it from the extension (.csv, .tsv, .jsonl, .xml for
            ASSIN 2, .conll, .json for SQuAD or character-offset NER).
        text_column: str. CSV/TSV/JSON-lines column of the text.
        text_pair_column: str or None. Column of the second text of a pair.
        label_column: str. Column of the label or score (ASSIN 2: the XML attribute is chosen by the task).
        labels: list or None. Class names (CoNLL: tags) in id order; None takes them from the training file.
            A validation label outside them is an error.
        entity_classes: list or None. Entity types of character-offset JSON; None: those of the training file.
        entity_classes_file: str or None. A file of entity types, one a line (instead of `entity_classes`).
        tag_scheme: str. Tag scheme of CoNLL files.
        max_seq_length: int. Longest packed sequence, in word pieces.
        doc_stride: int. Pieces between the starts of two windows of a long context: question answering's
            context windows, and character-offset NER's document windows (at most half a window there, so
            windows overlap; each piece is scored from the window where it has the most context).
        max_query_length: int. Question answering: question pieces kept.
        max_answer_length: int. Question answering: longest predicted answer, in pieces.
        eval_batch_size: int. Batch size of validation and prediction.
        max_eval_examples: int or None. Use only the first N dev examples.
        aspects: list or None. Summarization: the aspects to train and score (ACLSum: challenge, approach,
            outcome); None: those of the training file.
        sections: list or None. Summarization (ACLSum): the paper sections read, in order; None: all.
        top_k: int. Summarization: most sentences selected per aspect.
        threshold: float or None. Summarization: select only sentences scoring at least this; also the
            threshold of the sentence P/R/F1 metrics (None: the sigmoid's 0.5).
        trigram_blocking: bool. Summarization: skip a sentence sharing a word trigram with a selected one.
        oracle_sentences: int. Summarization: most sentences of a greedy-ROUGE oracle label set.
    """

    choices = {"data_format": ("auto", "csv", "tsv", "jsonl", "assin2", "conll", "offsets", "squad"),
               "tag_scheme": ("IOB1", "IOB2", "BIOES", "BILOU")}

    data_format: str = "auto"
    text_column: str = "text"
    text_pair_column: typing.Optional[str] = None
    label_column: str = "label"
    labels: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    entity_classes: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    entity_classes_file: typing.Optional[str] = None
    tag_scheme: str = "IOB2"
    max_seq_length: int = 128
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    eval_batch_size: int = 64
    max_eval_examples: typing.Optional[int] = None
    aspects: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    sections: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    top_k: int = 3
    threshold: typing.Optional[float] = None
    trigram_blocking: bool = True
    oracle_sentences: int = 3

    def check(self, task):
        """Raises `ValueError` for settings `task` (a kind name) cannot use."""
        if task == "question_answering" and self.doc_stride > self.max_seq_length - self.max_query_length - 3:
            raise ValueError(f"doc_stride ({self.doc_stride}) must be <= max_seq_length - max_query_length - 3 "
                             f"({self.max_seq_length - self.max_query_length - 3}), or context would be skipped")
        if self.max_seq_length < 3:
            raise ValueError(f"max_seq_length must be >= 3, got {self.max_seq_length}")


@dataclasses.dataclass
class TaskData:
    """A task's examples as batches plus what evaluation needs to score predictions.

    Args:
        dataset: `tf.data.Dataset` of `(x, y)` batches.
        size: int. Examples (classification), windows (question answering) or sequences (NER).
        reference: what the task's `evaluate` scores against (examples or windows).
        labels: list of str or None. Class or tag names.
        source: str. The file read.
    """

    dataset: object
    size: int
    reference: object
    labels: list = None
    source: str = ""


class TaskKind:
    """One task kind: reads its data, builds its Keras model, scores and writes predictions, post-processes
    its exported graph. Subclasses set the class attributes and override the methods they need."""

    name = None  # The kind's name, e.g. "classification".
    model_class = None  # The Keras task model, e.g. `BertClassifier`.
    text_inputs = ("text",)  # Inputs of the exported `serving_default` signature.
    output_name = None  # Name of the single raw output in `serve_ids`.
    trainable = True  # Has a loss, so `training.finetune` can fit it.
    default_top_k = 5  # The export's `top_k` when none is given.

    # --- Data ---
    def read(self, path, options, tokenizer, *, batch_size, training, labels=None, seed=0, limit=None):
        """Reads `path` into a `TaskData` (training: shuffled, remainder dropped; else in order)."""
        raise NotImplementedError(f"task {self.name!r} does not read training data")

    # --- Model ---
    def build_model(self, encoder, labels, dropout=None):
        """The task model on `encoder`."""
        raise NotImplementedError

    def check_model(self, model):
        """Raises `ValueError` unless `model` is this task's model."""
        if not isinstance(model, self.model_class):
            raise ValueError(f"task {self.name!r} needs a {self.model_class.__name__}, "
                             f"but the model is a {type(model).__name__}")
        return model

    # --- Evaluation ---
    def predict(self, model, data):
        """Model outputs on `data`, in order (see `forward`)."""
        return np.concatenate([np.asarray(forward(model)(x)) for x, _ in data.dataset])

    def evaluate(self, data, outputs, labels=None, options=None):
        """Returns `(metrics, predictions)`: a dict of floats and what `write_predictions` writes."""
        raise NotImplementedError

    def write_predictions(self, output_dir, data, predictions, tokenizer=None):
        """Writes the per-example predictions next to `metrics.json`."""
        raise NotImplementedError

    # --- Export ---
    def postprocess(self, module, texts):
        """Tokenizes, packs, runs `module.model` and post-processes, all in the TF graph.

        Args:
            module: `keras_bert.export.ServingModule` (its `tokenizer`, `packer`, `run_model`).
            texts: dict of tf.string Tensors `[batch]` keyed by `text_inputs`.
        """
        raise NotImplementedError


_FORWARD = weakref.WeakKeyDictionary()


def forward(model):
    """`model(x, training=False)` as one `tf.function` per model, called outside any strategy's replicas.

    Each process computes the whole batch itself, in order. (`predict_on_batch` under a
    MirroredStrategy runs the undistributed batch on every replica and concatenates the copies.)
    """
    if model not in _FORWARD:
        model_ref = weakref.ref(model)  # The cached function must not keep its own key alive.
        _FORWARD[model] = tf.function(
            lambda x: keras.tree.map_structure(lambda t: tf.convert_to_tensor(t), model_ref()(x, training=False)),
            reduce_retracing=True)
    return _FORWARD[model]


def write_metrics(output_dir, metrics, step=None):
    """Writes `metrics.json` (with the step) to `output_dir`."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(dict(metrics, step=step), f, indent=2, sort_keys=True)


def write_tsv(path, header, rows):
    """Writes a TSV file with a header line (tabs and newlines inside cells become spaces)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(" ".join(str(cell).split()) for cell in row) + "\n")


def file_format(path, data_format, known):
    """The data format of `path`: `data_format` unless `auto`, else from the file's extension."""
    if data_format != "auto":
        if data_format not in known:
            raise DataError(f"{path}: data_format {data_format!r} is not one of {sorted(known)} for this task")
        return data_format
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    guess = {"tsv": "tsv", "txt": "tsv", "csv": "csv", "jsonl": "jsonl", "xml": "assin2", "conll": "conll",
             "json": "json"}.get(extension)
    if guess == "json":  # A JSON file is SQuAD, offsets JSON, or JSON lines, whichever the task reads.
        guess = next((f for f in ("squad", "offsets", "jsonl") if f in known), None)
    if guess not in known:
        raise DataError(f"{path}: cannot tell the data format from the extension; set data_format to one of "
                        f"{sorted(known)}")
    return guess
