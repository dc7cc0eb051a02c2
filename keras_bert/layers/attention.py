"""Multi-head self-attention with a fused query/key/value projection and a padding mask."""

import keras
from keras import ops

from keras_bert.layers.dropout import Dropout

# Added to the scores of padded keys; large but finite so float32 softmax stays exact.
_MASK_PENALTY = -1e9


def padding_mask_to_bias(padding_mask):
    """`[batch, seq]` 1/0 mask -> float32 additive bias `[batch, 1, 1, seq]`."""
    mask = ops.cast(padding_mask, "float32")
    return ((1.0 - mask) * _MASK_PENALTY)[:, None, None, :]


@keras.saving.register_keras_serializable(package="keras_bert")
class SelfAttention(keras.layers.Layer):
    """Bidirectional multi-head self-attention over real (non-padding) tokens.

    Query, key and value come from one `[hidden, 3 * hidden]` projection (one
    matmul instead of three). Scores and softmax run in float32 under mixed
    precision.

    Args:
        hidden_size: int. Model width.
        num_heads: int. Number of attention heads; must divide `hidden_size` unless
            `head_size` is given.
        head_size: int or None. Width of each head; None: `hidden_size // num_heads`.
            Heads of another width (a student with pruned heads) project from and back
            to `hidden_size` all the same.
        dropout: float. Dropout on attention probabilities.
        initializer_range: float. Stddev of the truncated-normal initializer.

    Call arguments:
        x: float tensor `[batch, seq, hidden]`, or its `[batch * seq, hidden]`
            view (the output then has the same 2D shape).
        padding_mask: int tensor `[batch, seq]`, 1 for real tokens, 0 for padding.
        first_token_only: bool. Attend from the first (`[CLS]`) position only, over all
            keys: the output is `[batch, 1, hidden]` (`[batch, hidden]` for a 2D input).
        return_attention_scores: bool. Also return the float32 attention probabilities
            `[batch, heads, queries, keys]` (before dropout; zero at padded keys), as
            `(output, probabilities)`. Takes the non-fused path on every backend.

    Example:
    >>> layer = SelfAttention(hidden_size=8, num_heads=2)
    >>> x, padding_mask = ops.ones((2, 5, 8)), ops.ones((2, 5), "int32")
    >>> tuple(layer(x, padding_mask).shape)
    (2, 5, 8)
    >>> tuple(layer(x, padding_mask, first_token_only=True).shape)
    (2, 1, 8)
    >>> tuple(layer(x, padding_mask, return_attention_scores=True)[1].shape)
    (2, 2, 5, 5)
    """

    def __init__(self, hidden_size, num_heads, dropout=0.1, initializer_range=0.02, head_size=None, **kwargs):
        super().__init__(**kwargs)
        if head_size is None and hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
        # === Config ===
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.head_size = hidden_size // num_heads if head_size is None else int(head_size)
        self._head_size_arg = head_size
        self.attention_size = num_heads * self.head_size  # All heads side by side.
        # === Layers ===
        initializer = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.qkv = keras.layers.Dense(3 * self.attention_size, kernel_initializer=initializer,
                                      dtype=self.dtype_policy, name="qkv")
        self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=initializer,
                                               dtype=self.dtype_policy, name="output")
        self.dropout_layer = Dropout(dropout, dtype="float32", name="dropout")

    def build(self, x_shape, padding_mask_shape=None):
        self.qkv.build(x_shape)
        self.output_dense.build(tuple(x_shape[:-1]) + (self.attention_size,))

    def call(self, x, padding_mask, training=None, first_token_only=False, return_attention_scores=False):
        # Projections run on a 2D `[batch * seq, hidden]` view: a plain MatMul is much
        # faster on CPU than the broadcasting BatchMatMul of a 3D input (and so is its
        # kernel gradient, which otherwise sums over the batch). 2D inputs stay 2D.
        batch, seq = ops.shape(padding_mask)[0], ops.shape(padding_mask)[1]
        rank3 = len(x.shape) == 3
        if rank3:
            x = ops.reshape(x, (-1, self.hidden_size))
        qkv = ops.reshape(self.qkv(x), (batch, seq, 3, self.num_heads, self.head_size))
        probs = None
        if self._use_fused_kernel(training) and not return_attention_scores:
            context = self._fused_attention(qkv, padding_mask, first_token_only)
        else:
            context, probs = self._attention(qkv, padding_mask, training, first_token_only)
        output = self.output_dense(context)
        if rank3:
            output = ops.reshape(output, (batch, 1 if first_token_only else seq, self.hidden_size))
        return (output, probs) if return_attention_scores else output

    def _use_fused_kernel(self, training):
        # `ops.dot_product_attention` reaches the backends' fused kernels (cuDNN/XLA on JAX, SDPA on
        # PyTorch) but has no dropout. On TensorFlow the layout below measured faster on CPU; JAX on
        # CPU has no float16 dot with float32 accumulation, which its attention asks for.
        return (keras.backend.backend() != "tensorflow" and self.compute_dtype != "float16"
                and (not training or self.dropout == 0))

    def _fused_attention(self, qkv, padding_mask, first_token_only):
        """`[batch, seq, 3, heads, head_size]` -> context `[batch * seq (or batch), hidden]`."""
        query, key, value = ops.unstack(qkv, 3, axis=2)
        query = query[:, :1] if first_token_only else query
        # The full `[batch, 1, queries, keys]` shape: cuDNN's kernel takes no broadcast mask.
        mask = ops.broadcast_to(ops.cast(padding_mask, "bool")[:, None, None, :],
                                (ops.shape(query)[0], 1, ops.shape(query)[1], ops.shape(padding_mask)[1]))
        context = ops.dot_product_attention(query, key, value, mask=mask,
                                            scale=self.head_size ** -0.5)
        return ops.reshape(context, (-1, self.attention_size))

    def _attention(self, qkv, padding_mask, training, first_token_only):
        """`[batch, seq, 3, heads, head_size]` -> context `[batch * seq (or batch), hidden]`, probabilities."""
        scale = ops.cast(self.head_size ** -0.5, qkv.dtype)
        # One transpose to `[3, batch, heads, seq, head_size]`, then one unstack of the leading
        # axis: its gradient is one stack, where a slice's gradient writes a zero-filled copy of
        # the whole projection, and it measured faster than three slices and three transposes.
        query, key, value = ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)), 3, axis=0)
        query = query[:, :, :1] if first_token_only else query
        query = query * scale  # [batch, heads, seq (or 1), head_size]
        key_t = ops.transpose(key, (0, 1, 3, 2))  # [batch, heads, head_size, seq]
        scores = ops.matmul(query, key_t)
        scores = ops.cast(scores, "float32") + padding_mask_to_bias(padding_mask)
        probs = ops.softmax(scores, axis=-1)
        dropped = ops.cast(self.dropout_layer(probs, training=training), self.compute_dtype)
        context = ops.matmul(dropped, value)  # [batch, heads, seq, head_size]
        return ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, self.attention_size)), probs

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads, dropout=self.dropout,
                      initializer_range=self.initializer_range, head_size=self._head_size_arg)
        return config
