"""The int8 export kernels (`keras_bert.export.int8`): the numbers of Keras' own int8 call, op check, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bert
from keras_bert.export import export, export_allowlist, saved_model_ops, uses_xla
from keras_bert.export.int8 import KERNELS, kernel_of, use_kernel
from keras_bert.export.precision import INT8_KERNEL, quantize_int8
from tests.export.conftest import build_model
from tests.export.helpers import TEXTS, Tf1Model

# Kernels that replace Keras' Dense call ("xla" keeps it and compiles the whole model).
REPLACING = [kernel for kernel in KERNELS if kernel != "xla"]


def _ids():
    ids = np.array([[2, 5, 7, 9, 10, 5, 11, 3, 0, 0], [2, 12, 13, 14, 15, 3, 0, 0, 0, 0]], "int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32")}


def _graph_call(model, inputs):
    return tf.function(lambda x: model(x, training=False))(inputs).numpy()


@pytest.mark.parametrize("kernel", REPLACING)
def test_kernel_computes_keras_int8_numbers(kernel):
    model = quantize_int8(build_model("classifier"))
    keras_int8 = _graph_call(model, _ids())
    float32 = _graph_call(build_model("classifier"), _ids())
    assert kernel_of(model) is None
    use_kernel(model, kernel)
    assert kernel_of(model) == kernel
    got = _graph_call(model, _ids())
    # The same int32 accumulators and scales: only float rounding of the dequantization differs.
    np.testing.assert_allclose(got, keras_int8, rtol=1e-4, atol=1e-4)
    assert 0.0 < np.abs(got - float32).max() < 0.1 * np.abs(float32).max()
    use_kernel(model, "xla")  # back to Keras' own call
    np.testing.assert_array_equal(_graph_call(model, _ids()), keras_int8)


def test_kernel_choice_is_checked():
    with pytest.raises(ValueError, match="int8 kernel must be one of xla, xla_dense, xla_rows, onednn, got 'fast'"):
        use_kernel(quantize_int8(build_model("classifier")), "fast")


def test_model_with_a_kernel_round_trips_through_keras_file(tmp_path):
    model = use_kernel(quantize_int8(build_model("classifier")), INT8_KERNEL)
    expected = _graph_call(model, _ids())
    reloaded = keras_bert.load(keras_bert.save(model, str(tmp_path / "int8")))
    assert kernel_of(reloaded) is None  # the kernel is an export-time choice, not saved
    np.testing.assert_allclose(_graph_call(use_kernel(reloaded, INT8_KERNEL), _ids()), expected, atol=1e-6)


# xla_dense's export is the slowest to compile and shares its cluster with xla_rows: large only.
@pytest.mark.parametrize("kernel", [pytest.param(k, marks=pytest.mark.large) if k == "xla_dense" else k
                                    for k in REPLACING])
def test_kernel_export_passes_op_check_and_serves_keras_numbers(kernel, vocab_file, tmp_path):
    model = use_kernel(quantize_int8(build_model("classifier")), kernel)
    path = export(model, str(tmp_path / kernel), "classification", vocab_file, version=1, server_configs=False)
    assert saved_model_ops(path) <= export_allowlist(), sorted(saved_model_ops(path) - export_allowlist())
    assert uses_xla(path) == kernel.startswith("xla")
    served = Tf1Model(path)
    try:
        by_ids = served.run("serve_ids", _ids())["logits"]
        texts = served.run("serving_default", {"text": TEXTS})["probabilities"]
        single = served.run("serving_default", {"text": TEXTS[2:3]})["probabilities"]
    finally:
        served.close()
    np.testing.assert_allclose(by_ids, _graph_call(model, _ids()), rtol=1e-4, atol=1e-4)
    # Per-token scales: a row's answer does not depend on the rest of its batch or on padding.
    np.testing.assert_allclose(single[0], texts[2], atol=1e-5)
    keras.backend.clear_session()
