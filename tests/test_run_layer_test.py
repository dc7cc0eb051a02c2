"""`run_layer_test` catches what it checks: weight counts, frozen weights, output dtypes; restores the policy."""

import keras
import numpy as np
import pytest

from tests.test_case import run_layer_test

X = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")


@keras.saving.register_keras_serializable(package="keras_bert_tests")
class Scale(keras.layers.Layer):
    """x * w (+ an optional unused weight, an optional float32 output, an int output)."""

    def __init__(self, unused_only=False, float32_output=False, **kwargs):
        super().__init__(**kwargs)
        self.unused_only = unused_only
        self.float32_output = float32_output

    def build(self, x_shape):
        self.w = self.add_weight(name="w", shape=(x_shape[-1],), initializer="ones")
        self.counter = self.add_weight(name="counter", shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        y = x if self.unused_only else x * self.w
        y = keras.ops.cast(y, "float32") if self.float32_output else y
        return y, keras.ops.argmax(x, axis=-1)

    def get_config(self):
        return dict(super().get_config(), unused_only=self.unused_only, float32_output=self.float32_output)


SHAPES = ((2, 4), (2,))


def test_passes_and_restores_the_policy():
    before = keras.config.dtype_policy().name
    outputs = run_layer_test(Scale(), (X,), SHAPES, expected_num_trainable_weights=1,
                             expected_num_non_trainable_weights=1)
    assert keras.config.dtype_policy().name == before
    assert keras.backend.standardize_dtype(outputs[1].dtype) == "int32"  # int outputs are left as they are


def test_wrong_weight_counts_fail():
    with pytest.raises(AssertionError):
        run_layer_test(Scale(), (X,), SHAPES, expected_num_trainable_weights=2)
    with pytest.raises(AssertionError):
        run_layer_test(Scale(), (X,), SHAPES, expected_num_non_trainable_weights=0)


def test_weights_that_do_not_train_fail():
    with pytest.raises(AssertionError, match="did not change|no trainable weight changed"):
        run_layer_test(Scale(unused_only=True), (X,), SHAPES)


def test_output_dtype_per_policy():
    before = keras.config.dtype_policy().name
    with pytest.raises(AssertionError, match="mixed_bfloat16"):
        run_layer_test(Scale(float32_output=True), (X,), SHAPES)
    assert keras.config.dtype_policy().name == before  # restored after a failure too
    run_layer_test(Scale(float32_output=True), (X,), SHAPES, expected_output_dtype="float32")
    run_layer_test(Scale(float32_output=True), (X,), SHAPES,
                   expected_output_dtype={"mixed_bfloat16": "float32", "mixed_float16": "float32"})
