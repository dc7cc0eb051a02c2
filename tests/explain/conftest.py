"""Tiny text-in task models of every kind on one encoder (hidden 8, 2 layers), with a small WordPiece vocabulary."""

import keras
import numpy as np
import pytest

import keras_bert

WORDS = ["the", "film", "is", "good", "bad", "not", "a", "movie", "great", "who", "wrote", "it", "ann", "emile",
         "by", "and", "was", "un", "##believ", "##ably", "##s", ",", ".", "!", "?", "witty", "dull", "plot"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def tiny_encoder(seed=0):
    """A tiny encoder whose outputs vary with the input (wide initializer, random biases and LayerNorms)."""
    keras.utils.set_random_seed(seed)
    config = keras_bert.BertConfig(vocab_size=len(VOCABULARY), hidden_size=8, num_layers=2, num_heads=2,
                                   intermediate_size=16, max_position_embeddings=32, hidden_dropout=0.0,
                                   attention_dropout=0.0, initializer_range=0.5)
    encoder = keras_bert.BertEncoder(config)
    rng = np.random.default_rng(seed)
    for variable in encoder.weights:
        if variable.path.endswith(("bias", "beta", "gamma")):
            base = 1.0 if variable.path.endswith("gamma") else 0.0
            variable.assign((base + 0.3 * rng.standard_normal(tuple(variable.shape))).astype("float32"))
    return encoder


def with_preprocessor(model, sequence_length=24):
    from keras_bert.tasks.preprocessing import BertTextPreprocessor

    model.preprocessor = BertTextPreprocessor(VOCABULARY, lowercase=True, sequence_length=sequence_length)
    return model


def _randomize_head(model, seed=1):
    rng = np.random.default_rng(seed)
    encoder_paths = {id(w) for w in model.encoder.weights}
    for variable in model.weights:
        if id(variable) not in encoder_paths:
            variable.assign((1.0 * rng.standard_normal(tuple(variable.shape))).astype("float32"))
    return model


@pytest.fixture(scope="session")
def tiny_models():
    """`{kind: text-in model}` for every kind with an attribution target, plus `fill_mask` (none)."""
    encoder = tiny_encoder()
    models = {
        "classification": keras_bert.BertClassifier(encoder, num_classes=3, labels=["neg", "neu", "pos"]),
        "regression": keras_bert.BertRegressor(encoder),
        "token_classification": keras_bert.BertTokenClassifier(encoder, num_classes=3, labels=["O", "B-PER", "I-PER"]),
        "question_answering": keras_bert.BertQuestionAnswerer(encoder),
        "embedding": keras_bert.BertEmbedder(encoder),
        "fill_mask": keras_bert.BertPretrainer(encoder),
    }
    return {kind: with_preprocessor(_randomize_head(model)) for kind, model in models.items()}


@pytest.fixture(scope="session")
def saved_classifier(tiny_models, tmp_path_factory):
    """The tiny classifier saved as a text-in model directory (what `training.finetune` writes)."""
    directory = str(tmp_path_factory.mktemp("explain") / "classifier")
    keras_bert.save(tiny_models["classification"], directory)
    return directory
