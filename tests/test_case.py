"""Shared test helpers: layer, serialization and `.keras` save/load round trips, tiny configs."""

import os

import keras
import numpy as np

import keras_bert


def tiny_config(**overrides):
    """A BERT small enough for unit tests (hidden 8, 2 layers, 2 heads)."""
    values = dict(vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                  max_position_embeddings=32, hidden_dropout=0.0, attention_dropout=0.0)
    values.update(overrides)
    return keras_bert.BertConfig(**values)


def random_inputs(batch=3, seq=7, vocab_size=50, seed=0, min_length=2):
    """Random `token_ids`/`segment_ids`/`padding_mask` with a random real length per row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, seq + 1, size=batch)
    lengths[0] = seq  # at least one full row
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    token_ids = rng.integers(5, vocab_size, size=(batch, seq)).astype("int32") * mask
    segment_ids = ((np.arange(seq)[None, :] >= (lengths // 2)[:, None]) * mask).astype("int32")
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask}


def to_numpy(outputs):
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), outputs)


def assert_all_close(a, b, atol=1e-6):
    a, b = to_numpy(a), to_numpy(b)
    keras.tree.assert_same_structure(a, b)
    for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def run_serialization_test(obj):
    """`get_config` -> `from_config` -> `get_config` gives the same config, and the same class."""
    config = obj.get_config()
    serialized = keras.saving.serialize_keras_object(obj)
    restored = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    assert type(restored) is type(obj)
    assert restored.get_config() == config, (restored.get_config(), config)
    return restored


def run_layer_test(layer, call_args, expected_output_shape):
    """Eager call, symbolic call, serialization round trip and identical outputs after copying weights."""
    outputs = layer(*call_args)
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), outputs)
    assert shapes == expected_output_shape, (shapes, expected_output_shape)
    symbolic = [keras.KerasTensor(np.shape(a), dtype=str(np.asarray(a).dtype)) for a in call_args]
    symbolic_out = layer(*symbolic)
    keras.tree.map_structure(lambda s, e: None, symbolic_out, outputs)
    restored = run_serialization_test(layer)
    restored(*call_args)
    restored.set_weights(layer.get_weights())
    assert_all_close(restored(*call_args), outputs)
    return outputs


def run_model_saving_test(model, inputs, tmp_path):
    """`.keras` save -> load (safe mode) gives the same class and identical outputs."""
    expected = model(inputs)
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is type(model)
    assert_all_close(restored(inputs), expected)
    return restored
