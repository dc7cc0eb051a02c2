"""`LoopConfig.use_jit_compile`: a config's `jit_compile: true` does not put mixed_bfloat16 under XLA on CPU."""

import pytest
import tensorflow as tf

from keras_bert.trainer import LoopConfig


def test_bfloat16_on_cpu_trains_without_xla(capsys):
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        pytest.skip("the rule is for machines without GPU/TPU")
    assert LoopConfig(mixed_precision="mixed_bfloat16", jit_compile=True).use_jit_compile() is False
    assert "jit_compile: off for mixed_bfloat16 on CPU" in capsys.readouterr().out
    assert LoopConfig(mixed_precision=None, jit_compile=True).use_jit_compile() is True
    assert LoopConfig(mixed_precision="mixed_float16", jit_compile=True).use_jit_compile() is True
    assert LoopConfig(mixed_precision="mixed_bfloat16", jit_compile=False).use_jit_compile() is False
