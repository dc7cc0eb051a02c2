"""Fixtures shared by the checkpoint tests: tiny configs, random weights, random padded inputs."""

import os

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def _randomize(model, seed=0, scale=0.2):
    """Gives every variable random values (LayerNorm gammas near 1) so swaps and transposes show."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        value = scale * rng.standard_normal(shape)
        if variable.path.endswith("gamma"):
            value = 1.0 + value
        variable.assign(value.astype("float32"))
    return model


def _inputs(batch=3, seq=10, vocab_size=50, seed=0, masked=0, type_vocab_size=2):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, seq + 1, size=batch)
    lengths[0] = seq
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    token_ids = rng.integers(5, vocab_size, size=(batch, seq)).astype("int32") * mask
    segment_ids = ((np.arange(seq)[None, :] >= (lengths // 2)[:, None]) * mask).astype("int32")
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask}
    if masked:
        inputs["masked_positions"] = np.stack(
            [rng.choice(int(n), size=masked, replace=int(n) < masked) for n in lengths]).astype("int32")
    return inputs


@pytest.fixture
def randomize():
    return _randomize


@pytest.fixture
def make_inputs():
    return _inputs


@pytest.fixture
def tiny_config():
    import keras_bert

    def make(**overrides):
        values = dict(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                      max_position_embeddings=24, hidden_act="gelu_new", hidden_dropout=0.0,
                      attention_dropout=0.0)
        values.update(overrides)
        return keras_bert.BertConfig(**values)

    return make


@pytest.fixture
def fixtures_dir():
    return FIXTURES


def numpy_outputs(outputs):
    import keras

    return {k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in outputs.items() if k != "layer_outputs"}


@pytest.fixture
def run_model():
    def run(model, inputs):
        return numpy_outputs(model(inputs, training=False))

    return run
