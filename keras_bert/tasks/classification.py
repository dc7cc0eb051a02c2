"""The `classification` task: one text or a text pair -> one of N classes (SST-2, ASSIN 2 RTE, your CSV)."""

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from keras_bert.data import DataError, read_assin2, read_text_examples, text_examples_dataset
from keras_bert.models import BertClassifier
from keras_bert.tasks import base
from keras_bert.trainer import metrics as task_metrics

FORMATS = ("csv", "tsv", "jsonl", "assin2")

# Length buckets of training batches: short sentences are not padded to the longest of a random batch, let
# alone to max_seq_length. Two tokens wide where most sentences fall; bucket shapes cost no retracing (Keras'
# train function relaxes to dynamic shapes). Each pass drops the last partial batch of every bucket, so a
# set needs BUCKET_MIN_BATCHES batches per bucket: smaller sets get every 2nd, 3rd, ... boundary.
BUCKETS = (*range(6, 33, 2), *range(36, 65, 4), 80, 96, 128, 160, 192, 256, 320, 384)
BUCKET_MIN_BATCHES = 20


def length_buckets(num_examples, batch_size, max_seq_length):
    """Bucket boundaries for `num_examples` training examples, or None when there are too few for buckets."""
    boundaries = [b for b in BUCKETS if b < max_seq_length]
    most = num_examples // (BUCKET_MIN_BATCHES * batch_size) - 1  # Boundaries: one bucket more than that.
    if most < 1 or not boundaries:
        return None
    stride = math.ceil(len(boundaries) / most)
    return boundaries[stride - 1::stride]


def read_examples(path, options, *, regression, labels=None):
    """Reads text (or text-pair) examples with labels from CSV, TSV, JSON lines or ASSIN 2 XML.

    Args:
        path: str. The file.
        options: `DataOptions`. Format, columns, declared labels.
        regression: bool. Labels are float scores.
        labels: list of str or None. Class names; a label outside them is a `DataError` naming file and line.
            None: `options.labels`, else the sorted labels of this file.
    """
    data_format = base.file_format(path, options.data_format, FORMATS)
    if data_format == "assin2":
        examples = read_assin2(path, task="similarity" if regression else "entailment")
        if not regression and labels is not None and list(labels) != examples.label_list:
            raise DataError(f"{path}: ASSIN 2 labels {examples.label_list} differ from {list(labels)}")
        return examples
    columns = (options.text_column,) + ((options.text_pair_column,) if options.text_pair_column else ())
    return read_text_examples(path, text_columns=columns, label_column=options.label_column,
                              label_list=None if regression else (labels or options.labels), regression=regression,
                              file_format=data_format)


def first(examples, limit):
    """The first `limit` examples (all when `limit` is None)."""
    if not limit:
        return examples
    return dataclasses.replace(examples, texts_a=examples.texts_a[:limit], labels=examples.labels[:limit],
                               texts_b=None if examples.texts_b is None else examples.texts_b[:limit])


def score_rows(examples):
    """The text column of a predictions file: the text, or `text [SEP] pair`."""
    if examples.texts_b is None:
        return examples.texts_a
    return [f"{a} [SEP] {b}" for a, b in zip(examples.texts_a, examples.texts_b)]


class Classification(base.TaskKind):
    """Single-text or pair classification: accuracy and F1 (binary, else macro); exported probabilities and label."""

    name = "classification"
    model_class = BertClassifier
    output_name = "logits"
    regression = False

    def read(self, path, options, tokenizer, *, batch_size, training, labels=None, seed=0, limit=None):
        examples = read_examples(path, options, regression=self.regression, labels=labels)
        print(f"[data] {path}: {len(examples)} examples, {examples.skipped.summary()}")
        examples = first(examples, limit)
        if not len(examples):
            raise DataError(f"{path}: no examples")
        buckets = length_buckets(len(examples), batch_size, options.max_seq_length) if training else None
        dataset = text_examples_dataset(
            examples, tokenizer, sequence_length=options.max_seq_length, batch_size=batch_size, shuffle=training,
            seed=seed, pad_to_longest=True, bucket_boundaries=buckets, drop_remainder=training)
        return base.TaskData(dataset, len(examples), examples, examples.label_list, path)

    def build_model(self, encoder, labels, dropout=None):
        return BertClassifier(encoder, num_classes=len(labels), labels=list(labels), dropout=dropout)

    def evaluate(self, data, outputs, labels=None, options=None):
        gold = np.asarray(data.reference.labels)
        predicted = np.asarray(outputs).argmax(-1)
        metrics = {"accuracy": task_metrics.accuracy(gold, predicted)}
        metrics["f1"] = (task_metrics.binary_f1(gold, predicted) if np.shape(outputs)[-1] == 2
                         else task_metrics.macro_f1(gold, predicted))
        names = labels or data.labels
        rows = [(text, names[g], names[int(p)]) for text, g, p in zip(score_rows(data.reference), gold, predicted)]
        return metrics, rows

    def write_predictions(self, output_dir, data, predictions, tokenizer=None):
        base.write_tsv(os.path.join(output_dir, "predictions.tsv"), ("text", "label", "prediction"), predictions)

    def text_inputs_for(self, pair):
        return ("text", "text_pair") if pair else ("text",)

    def postprocess(self, module, texts):
        logits = module.run_model(module.pack_texts(texts))
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label = tf.gather(tf.constant(module.class_names), tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}

    # --- Text in, for `BertClassifier.fit(texts, labels)` ---
    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        from keras_bert.tasks import preprocessing

        names = None if self.regression else model.labels
        labels = None if y is None or isinstance(x, tf.data.Dataset) else preprocessing.label_ids(
            y, names, getattr(model, "num_classes", None), regression=self.regression)
        return preprocessing.text_dataset(model.preprocessor, x, labels, batch_size=batch_size, shuffle=shuffle,
                                          seed=seed, label_names=names, labelled=labelled)
