"""Optimizers: BERT's weight-decay exclusions, warmup + decay values, a LAMB step, serialization."""

import keras
import numpy as np
import pytest

from keras_bert.optimization import (PRECISIONS, WEIGHT_DECAY_EXCLUDED, AdamW, Lamb, WarmupDecaySchedule,
                                   create_optimizer, excluded_from_weight_decay, set_mixed_precision)


def test_exclusions_match_layer_norm_and_bias():
    dense = keras.layers.Dense(2, name="dense")
    norm = keras.layers.LayerNormalization(name="layer_norm")
    dense.build((None, 3))
    norm.build((None, 2))
    excluded = {v.path: excluded_from_weight_decay(v) for v in dense.weights + norm.weights}
    assert excluded == {"dense/kernel": False, "dense/bias": True, "layer_norm/gamma": True, "layer_norm/beta": True}


def test_adamw_does_not_decay_bias():
    optimizer = create_optimizer("adamw", learning_rate=0.1, weight_decay=0.5, clipnorm=None)
    dense = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="ones")
    dense.build((None, 1))
    optimizer.apply_gradients([(np.zeros((1, 1), "float32"), dense.kernel), (np.zeros((1,), "float32"), dense.bias)])
    assert float(dense.bias.numpy()[0]) == 1.0
    assert float(dense.kernel.numpy()[0, 0]) < 1.0


def test_schedule_values_and_serialization():
    schedule = WarmupDecaySchedule(1.0, warmup_steps=10, total_steps=110, end_learning_rate=0.0, power=1.0)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)
    squared = WarmupDecaySchedule(1.0, 0, 100, power=2.0)
    np.testing.assert_allclose(float(squared(50)), 0.25, atol=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupDecaySchedule) and restored.get_config() == schedule.get_config()


def test_lamb_step_matches_reference():
    weight = keras.Variable(np.array([[3.0, 4.0]], "float32"), name="kernel")
    gradient = np.array([[1.0, -2.0]], "float32")
    optimizer = Lamb(learning_rate=0.1, weight_decay_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-6)
    optimizer.apply_gradients([(gradient, weight)])
    # Step 1: m_hat = g, v_hat = g^2, so adam update = sign(g) (up to epsilon).
    update = gradient / (np.abs(gradient) + 1e-6) + 0.1 * np.array([[3.0, 4.0]])
    ratio = 5.0 / np.linalg.norm(update)
    np.testing.assert_allclose(weight.numpy(), [[3.0, 4.0]] - ratio * 0.1 * update, rtol=1e-5)
    config = optimizer.get_config()
    assert Lamb.from_config(config).weight_decay_rate == 0.1


def test_accumulation_and_loss_scale_options():
    optimizer = create_optimizer("lamb", 1e-3, accumulation_steps=4, mixed_precision="mixed_float16")
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert optimizer.inner_optimizer.gradient_accumulation_steps == 4


def test_optimizer_name_must_be_a_name():
    with pytest.raises(TypeError, match="learning_rate="):
        create_optimizer(1e-4)
    with pytest.raises(ValueError, match="Unknown optimizer 'adagrad'"):
        create_optimizer("adagrad")


def test_set_mixed_precision_takes_the_precisions_and_none():
    try:
        for policy in PRECISIONS:
            set_mixed_precision(policy)
            assert keras.config.dtype_policy().name == policy
        set_mixed_precision(None)
        assert keras.config.dtype_policy().name == "float32"
        with pytest.raises(ValueError, match="mixed_bfloat16"):
            set_mixed_precision("bfloat16")
    finally:
        keras.config.set_dtype_policy("float32")


def _fit_a_few_steps(optimizer, steps=4):
    """A tiny classifier trained a few steps from fixed weights; returns its weights."""
    import keras_bert
    from tests.test_case import random_inputs, tiny_config

    keras.utils.set_random_seed(1)
    model = keras_bert.BertClassifier(keras_bert.BertEncoder(tiny_config()), num_classes=2,
                                      dropout=0.0)
    model.compile(optimizer=optimizer)
    x = random_inputs(batch=4, seq=6)
    y = np.array([0, 1, 1, 0], "int32")
    for _ in range(steps):
        model.train_on_batch(x, y)  # The token embedding's gradient is sparse (IndexedSlices).
    return [w.numpy() for w in model.weights]


def test_fused_adamw_matches_keras_adamw():
    schedule = WarmupDecaySchedule(1e-2, 2, 10)
    ours = create_optimizer("adamw", schedule, weight_decay=0.1, clipnorm=1.0)
    reference = keras.optimizers.AdamW(learning_rate=WarmupDecaySchedule(1e-2, 2, 10), weight_decay=0.1,
                                       epsilon=1e-6, global_clipnorm=1.0)
    reference.exclude_from_weight_decay(var_names=list(WEIGHT_DECAY_EXCLUDED))
    trained, expected = _fit_a_few_steps(ours), _fit_a_few_steps(reference)
    assert any(np.abs(w - w0).max() > 1e-3 for w, w0 in zip(trained, _fit_a_few_steps(create_optimizer("sgd", 0.0))))
    for w, w0 in zip(trained, expected):
        np.testing.assert_allclose(w, w0, rtol=1e-5, atol=1e-6)


def test_fused_adamw_serializes():
    optimizer = create_optimizer("adamw", 1e-3, weight_decay=0.02)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdamW) and restored.weight_decay == 0.02
