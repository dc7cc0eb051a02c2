"""Tiny models, saved with a small vocabulary, for the export tests (one per task, built once)."""

import os

import keras
import pytest

import keras_bert
from keras_bert.export import export_model_dir
from tests.test_case import tiny_config

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "john",
         "lives", "in", "paris", "new", "york", "who", "where", "does", "what", "is", "play", "##s", "##ing",
         "##ed", "berlin", "and", "likes", "to", ",", ".", "?", "!", "é", "caf", "##é", "big", "small"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CLASS_LABELS = ["negative", "neutral", "positive"]
MAX_POSITIONS = 16  # texts longer than this are truncated by the export


def build_model(kind, seed=0):
    """Builds a tiny keras_bert model of `kind` (encoder, pretrainer, classifier, ...)."""
    keras.utils.set_random_seed(seed)
    config = tiny_config(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32,
                         max_position_embeddings=MAX_POSITIONS, initializer_range=0.5)
    encoder = keras_bert.BertEncoder(config)
    if kind == "encoder":
        return encoder
    if kind == "pretrainer":
        return keras_bert.BertPretrainer(encoder)
    if kind == "classifier":
        return keras_bert.BertClassifier(encoder, num_classes=3, labels=CLASS_LABELS)
    if kind == "regressor":
        return keras_bert.BertRegressor(encoder)
    if kind == "token_classifier":
        return keras_bert.BertTokenClassifier(encoder, num_classes=len(NER_LABELS), labels=NER_LABELS)
    if kind == "qa":
        return keras_bert.BertQuestionAnswerer(encoder)
    if kind == "embedder":
        return keras_bert.BertEmbedder(encoder, pooling="cls")
    raise ValueError(kind)


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, vocab_file):
    """Saves each tiny model kind to its own keras_bert model directory, lazily."""
    root = tmp_path_factory.mktemp("models")
    cache = {}

    def get(kind):
        if kind not in cache:
            directory = str(root / kind)
            keras_bert.save(build_model(kind), directory, vocab_file=vocab_file, lowercase=True)
            cache[kind] = directory
        return cache[kind]

    return get


# task key -> (model kind, task, export kwargs)
EXPORTS = {
    "classification": ("classifier", "classification", {}),
    "regression_pair": ("regressor", "regression", {"pair": True}),
    "ner": ("token_classifier", "token_classification", {}),
    "qa": ("qa", "question_answering", {"max_answer_length": 4}),
    "embedding": ("encoder", "embedding", {}),
    "fill_mask": ("pretrainer", "fill_mask", {"top_k": 3}),
}


@pytest.fixture(scope="session")
def exported(tmp_path_factory, model_dirs):
    """`exported(key)` -> (version dir, Tf1Model, Reference), exporting once per task."""
    from tests.export.helpers import Tf1Model
    from tests.export.reference import Reference

    base = tmp_path_factory.mktemp("exports")
    cache = {}

    def get(key):
        if key not in cache:
            kind, task, kwargs = EXPORTS[key]
            model_dir = model_dirs(kind)
            path = export_model_dir(model_dir, os.path.join(base, key), task, **kwargs)
            reference = Reference(keras_bert.load(model_dir), VOCAB, MAX_POSITIONS)
            cache[key] = (path, Tf1Model(path), reference)
        return cache[key]

    yield get
    for _, model, _ in cache.values():
        model.close()
