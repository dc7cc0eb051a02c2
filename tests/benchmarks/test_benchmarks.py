"""The benchmark harness's own arithmetic and timing contract (tiny configs; no timings asserted)."""

import pytest

import keras_bert
from benchmarks import compare, matmul_ceiling
from tests.test_case import tiny_config


@pytest.mark.parametrize("mode", ["step", "infer"])
@pytest.mark.parametrize("preset,seq,batch", [("bert_mini", 128, 32), ("bert_base", 128, 16), ("bert_mini", 512, 8)])
def test_matmul_list_adds_up_to_the_flops_formula(preset, seq, batch, mode):
    config = keras_bert.BertConfig.from_preset(preset)
    flops = sum(count * matmul_ceiling.matmul_flops(batch_dims, m, k, n)
                for _, count, batch_dims, m, k, n in matmul_ceiling.matmuls(config, seq, batch, mode))
    assert flops == batch * compare.flops_per_sequence(config, seq, mode)


@pytest.mark.parametrize("package", ["ours", "hub"])
def test_runners_time_their_paths(package):
    config = tiny_config(vocab_size=1100)  # random_batch draws token ids from 1000 up
    x, y = compare.random_batch(config, seq=32, batch=4)  # 20 masked positions
    variant = compare.Variant(package, "float32", config)
    for mode in ("step", "infer", "fit", "predict"):
        warmup, run = compare.make_runner(variant, mode, False, x, y, steps=2)
        warmup()
        seconds = run()
        if mode in ("fit", "predict"):  # timed by the BatchTimer callback, over exactly `steps` batches
            assert seconds > 0
        else:
            assert seconds is None
