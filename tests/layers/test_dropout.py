import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert.layers import Dropout, keep_mask
from tests.test_case import run_layer_test

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")


def _masks(layer, shape, calls):
    ones = np.ones(shape, "float32")
    return [keras.ops.convert_to_numpy(layer(ones, training=True)) != 0 for _ in range(calls)]


def test_layer_round_trip_and_inference_identity():
    layer = Dropout(0.3, seed=1)
    run_layer_test(layer, (X,), (2, 5, 8), expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(X, training=False)), X)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keeps_one_minus_rate_and_rescales(rate):
    layer = Dropout(rate, seed=3)
    x = np.random.default_rng(1).normal(size=(1000, 1000)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = y != 0
    # 1M Bernoulli draws: 5 standard deviations of the kept fraction.
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / x.size)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - x.mean()) < 0.01


def test_masks_are_uncorrelated_across_calls_and_neighbours():
    first, second = _masks(Dropout(0.5, seed=0), (512, 512), 2)
    assert (first != second).any()
    tol = 5 / 512  # 5 standard deviations of a correlation over 512*512 pairs
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < tol
    assert abs(np.corrcoef(first[:, :-1].ravel(), first[:, 1:].ravel())[0, 1]) < tol  # next element
    assert abs(np.corrcoef(first[:-1].ravel(), first[1:].ravel())[0, 1]) < tol  # next row
    # The kept fraction is right across rates (the 24-bit threshold has no gaps).
    for rate in np.linspace(0.05, 0.95, 16):
        kept = _masks(Dropout(float(rate), seed=5), (256, 256), 1)[0].mean()
        assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / 256 ** 2), rate


def test_same_seed_same_masks():
    a = _masks(Dropout(0.2, seed=7), (64, 64), 3)
    b = _masks(Dropout(0.2, seed=7), (64, 64), 3)
    c = _masks(Dropout(0.2, seed=8), (64, 64), 3)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        assert (x != z).any()


def test_noise_shape_broadcasts_the_mask():
    y = keras.ops.convert_to_numpy(Dropout(0.5, noise_shape=(None, 1, 8), seed=2)(np.ones((4, 6, 8)), training=True))
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert 0 < (y == 0).mean() < 1


def test_dynamic_shapes_and_xla():
    layer = Dropout(0.25, seed=4)
    dynamic = tf.function(lambda a: layer(a, training=True), input_signature=[tf.TensorSpec([None, 64])])
    assert 0.7 < (dynamic(tf.ones((300, 64))).numpy() != 0).mean() < 0.8
    # The same mask function under XLA and without it (one seed, one shape).
    seed = tf.constant([11, 12])
    eager = keep_mask((40, 64), 0.25, seed).numpy()
    compiled = tf.function(lambda s: keep_mask((40, 64), 0.25, s), jit_compile=True)(seed).numpy()
    np.testing.assert_array_equal(eager, compiled)
