import keras
import numpy as np
import pytest

from keras_bert import layers
from tests.test_case import assert_all_close, run_layer_test, to_numpy

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32")
IDS = np.array([[2, 7, 8, 3, 0], [2, 9, 3, 0, 0]], "int32")


def test_embeddings():
    layer = layers.BertEmbeddings(vocab_size=10, hidden_size=8, max_position_embeddings=16, type_vocab_size=3,
                                  dropout=0.2, layer_norm_epsilon=1e-6, initializer_range=0.05)
    # Token, segment and position embeddings, LayerNorm gamma and beta.
    run_layer_test(layer, (IDS, np.zeros_like(IDS)), (2, 5, 8), expected_num_trainable_weights=5,
                   expected_num_non_trainable_weights=0)
    assert layer.position_embeddings.shape == (16, 8)


def test_self_attention():
    layer = layers.SelfAttention(hidden_size=8, num_heads=2, dropout=0.0, initializer_range=0.05)
    run_layer_test(layer, (X, MASK), (2, 5, 8), expected_num_trainable_weights=4,  # qkv, output: kernel, bias
                   expected_num_non_trainable_weights=0)
    assert layer.qkv.kernel.shape == (8, 24)
    with pytest.raises(ValueError, match="not divisible"):
        layers.SelfAttention(hidden_size=8, num_heads=3)
    # Heads of their own width (pruned heads): 3 x 2 = 6 wide, projected from and back to 8.
    narrow = layers.SelfAttention(hidden_size=8, num_heads=3, head_size=2, dropout=0.0)
    run_layer_test(narrow, (X, MASK), (2, 5, 8), expected_num_trainable_weights=4,
                   expected_num_non_trainable_weights=0)
    assert narrow.qkv.kernel.shape == (8, 18) and narrow.output_dense.kernel.shape == (6, 8)


@pytest.mark.parametrize("num_heads,head_size", [(2, None), (3, 2)])
@pytest.mark.parametrize("fused", [False, True])
def test_self_attention_matches_naive_per_head_computation(fused, num_heads, head_size):
    # Both paths, whichever the backend picks: `ops.dot_product_attention` (JAX, PyTorch at inference)
    # and the hand-laid-out one (TensorFlow, and training with dropout everywhere).
    layer = layers.SelfAttention(hidden_size=8, num_heads=num_heads, head_size=head_size, dropout=0.0)
    layer._use_fused_kernel = lambda training: fused
    size = head_size or 8 // num_heads
    width = num_heads * size
    out = keras.ops.convert_to_numpy(layer(X, MASK))
    first = keras.ops.convert_to_numpy(layer(X, MASK, first_token_only=True))
    kernel, bias = [np.asarray(w) for w in layer.qkv.get_weights()]
    out_kernel, out_bias = [np.asarray(w) for w in layer.output_dense.get_weights()]
    qkv = X @ kernel + bias
    q, k, v = qkv[..., :width], qkv[..., width:2 * width], qkv[..., 2 * width:]
    heads = []
    for h in range(num_heads):
        sl = slice(size * h, size * h + size)
        scores = q[..., sl] @ np.swapaxes(k[..., sl], 1, 2) / np.sqrt(size)
        scores = np.where(MASK[:, None, :] > 0, scores, -1e30)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        heads.append(probs @ v[..., sl])
    expected = np.concatenate(heads, -1) @ out_kernel + out_bias
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(first, expected[:, :1], atol=1e-5)


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_transformer_block(pre_layer_norm):
    layer = layers.TransformerBlock(hidden_size=8, num_heads=2, intermediate_size=16, hidden_act="gelu_new",
                                    dropout=0.0, attention_dropout=0.0, layer_norm_epsilon=1e-6,
                                    initializer_range=0.05, pre_layer_norm=pre_layer_norm)
    # Attention (4), two LayerNorms (4), intermediate and output dense (4). A post-LN block ends on its
    # float32 LayerNorm, so its output stays float32 under mixed precision; a pre-LN block ends on the
    # residual sum, in the compute dtype.
    run_layer_test(layer, (X, MASK), (2, 5, 8), expected_num_trainable_weights=12,
                   expected_num_non_trainable_weights=0,
                   expected_output_dtype=None if pre_layer_norm else "float32")


def test_pooler_and_nsp_head():
    run_layer_test(layers.BertPooler(hidden_size=8, initializer_range=0.05), (X,), (2, 8),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=0)
    # NSP logits are float32 under every policy.
    run_layer_test(layers.NextSentenceHead(initializer_range=0.05), (X[:, 0],), (2, 2),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
                   expected_output_dtype="float32")


def test_masked_lm_head_untied():
    head = layers.MaskedLMHead(vocab_size=11, hidden_size=8, hidden_act="relu", layer_norm_epsilon=1e-6,
                               initializer_range=0.05)
    positions = np.array([[1, 2, 0], [4, 0, 0]], "int32")
    # Transform dense (2), LayerNorm (2), the untied output matrix and the output bias; float32 logits.
    out = run_layer_test(head, (X, positions), (2, 3, 11), expected_num_trainable_weights=6,
                         expected_num_non_trainable_weights=0, expected_output_dtype="float32")
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_gather_positions_matches_numpy():
    positions = np.array([[4, 0, 2], [1, 1, 3]], "int32")
    got = keras.ops.convert_to_numpy(layers.gather_positions(X, positions))
    np.testing.assert_array_equal(got, np.stack([X[b, positions[b]] for b in range(2)]))


def test_masked_mean_pooling_ignores_padding():
    pooled = layers.MaskedMeanPooling()(X, MASK)
    assert_all_close(pooled, np.stack([X[0].mean(0), X[1, :3].mean(0)]), atol=1e-6)


@pytest.mark.parametrize("name,approximate", [("gelu", False), ("gelu_new", True), ("gelu_pytorch_tanh", True)])
def test_gelu_variants(name, approximate):
    x = np.linspace(-3, 3, 13).astype("float32")
    from math import erf, pi, sqrt, tanh
    if approximate:
        expected = [0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v ** 3))) for v in x]
    else:
        expected = [0.5 * v * (1 + erf(v / sqrt(2))) for v in x]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layers.get_activation(name)(x)), expected, atol=1e-6)


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_transformer_block_first_token_only_matches_full_block(pre_layer_norm):
    block = layers.TransformerBlock(hidden_size=8, num_heads=2, intermediate_size=16, pre_layer_norm=pre_layer_norm,
                                    dropout=0.0, attention_dropout=0.0, initializer_range=0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 8)).astype("float32")
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], "int32")
    full = block(x, mask)
    first = block(x, mask, first_token_only=True)
    assert tuple(first.shape) == (3, 1, 8)
    assert_all_close(first, to_numpy(full)[:, :1], atol=1e-5)
