"""One BERT transformer block: self-attention and feed-forward, each with residual and LayerNorm."""

import keras
from keras import ops

from keras_bert.layers.activations import get_activation
from keras_bert.layers.attention import SelfAttention
from keras_bert.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="keras_bert")
class TransformerBlock(keras.layers.Layer):
    """A transformer encoder block, post-LN (BERT) or pre-LN.

    Post-LN: `x = LN(x + Attn(x)); x = LN(x + FFN(x))`.
    Pre-LN: `x = x + Attn(LN(x)); x = x + FFN(LN(x))`.
    LayerNorms run in float32 under mixed precision.

    Args:
        hidden_size: int. Model width.
        num_heads: int. Attention heads.
        intermediate_size: int. Feed-forward inner width.
        hidden_act: str. Feed-forward activation (see `BertConfig.hidden_act`).
        dropout: float. Dropout after each sublayer.
        attention_dropout: float. Dropout on attention probabilities.
        layer_norm_epsilon: float. LayerNorm epsilon.
        initializer_range: float. Stddev of the truncated-normal initializer.
        pre_layer_norm: bool. Pre-LN instead of post-LN.
        head_size: int or None. Width of each attention head (see `SelfAttention`).

    Call arguments:
        x: float tensor `[batch, seq, hidden]`.
        padding_mask: int tensor `[batch, seq]`, 1 for real tokens.
        first_token_only: bool. Compute the output at the first (`[CLS]`) position only
            (`[batch, 1, hidden]`), attending over every position: the last block of a
            model that reads only `[CLS]` then skips most of its work.
        return_attention_scores: bool. Also return the self-attention probabilities
            `[batch, heads, queries, keys]` (see `SelfAttention`), as `(output, probabilities)`.
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, hidden_act="gelu", dropout=0.1,
                 attention_dropout=0.1, layer_norm_epsilon=1e-12, initializer_range=0.02,
                 pre_layer_norm=False, head_size=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.pre_layer_norm = pre_layer_norm
        self.head_size = head_size
        # === Layers ===
        initializer = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.attention = SelfAttention(hidden_size, num_heads, dropout=attention_dropout,
                                       initializer_range=initializer_range, head_size=head_size,
                                       dtype=self.dtype_policy,
                                       name="attention")
        self.attention_dropout_layer = Dropout(dropout, dtype=self.dtype_policy, name="attention_output_dropout")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype="float32", name="attention_layer_norm")
        # The activation runs inside the Dense: in one name scope TensorFlow's oneDNN
        # remapper fuses MatMul + bias + GELU into one kernel (in bfloat16, a separate
        # GELU costs more than the matmul).
        self.intermediate = keras.layers.Dense(intermediate_size, activation=get_activation(hidden_act),
                                               kernel_initializer=initializer, dtype=self.dtype_policy,
                                               name="intermediate")
        self.ffn_output = keras.layers.Dense(hidden_size, kernel_initializer=initializer,
                                             dtype=self.dtype_policy, name="ffn_output")
        self.ffn_dropout_layer = Dropout(dropout, dtype=self.dtype_policy, name="ffn_dropout")
        self.ffn_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype="float32", name="ffn_layer_norm")

    def build(self, x_shape, padding_mask_shape=None):
        self.attention.build(x_shape)
        self.attention_layer_norm.build(x_shape)
        self.intermediate.build(x_shape)
        self.ffn_output.build(tuple(x_shape[:-1]) + (self.intermediate_size,))
        self.ffn_layer_norm.build(x_shape)

    def _feed_forward(self, x, training):
        h = self.ffn_output(self.intermediate(x))
        return self.ffn_dropout_layer(h, training=training)

    def call(self, x, padding_mask, training=None, first_token_only=False, return_attention_scores=False):
        # The block works on the 2D `[batch * seq, hidden]` view: every projection is
        # then a plain MatMul (see `SelfAttention.call`), LayerNorms are unchanged.
        rank3 = len(x.shape) == 3
        if rank3:
            batch, seq = ops.shape(x)[0], ops.shape(x)[1]
            x = ops.reshape(x, (-1, self.hidden_size))
        elif first_token_only:
            raise ValueError("first_token_only needs a [batch, seq, hidden] input")
        # With first_token_only, attention reads every row of `x` but returns one row per
        # sequence; the residual stream continues from the first rows only.
        residual = ops.reshape(x, (batch, seq, self.hidden_size))[:, 0] if first_token_only else x
        attend = dict(training=training, first_token_only=first_token_only,
                      return_attention_scores=return_attention_scores)
        if self.pre_layer_norm:
            h = self.attention(self.attention_layer_norm(x), padding_mask, **attend)
            h, probs = h if return_attention_scores else (h, None)
            x = residual + self.attention_dropout_layer(h, training=training)
            x = x + self._feed_forward(self.ffn_layer_norm(x), training)
        else:
            h = self.attention(x, padding_mask, **attend)
            h, probs = h if return_attention_scores else (h, None)
            x = self.attention_layer_norm(residual + self.attention_dropout_layer(h, training=training))
            # LayerNorm outputs float32; the residual stream stays in the compute dtype.
            x = ops.cast(x, self.compute_dtype)
            x = self.ffn_layer_norm(x + self._feed_forward(x, training))
        if rank3:
            x = ops.reshape(x, (batch, 1 if first_token_only else seq, self.hidden_size))
        return (x, probs) if return_attention_scores else x

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_heads=self.num_heads,
            intermediate_size=self.intermediate_size, hidden_act=self.hidden_act, dropout=self.dropout,
            attention_dropout=self.attention_dropout, layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range, pre_layer_norm=self.pre_layer_norm, head_size=self.head_size)
        return config
