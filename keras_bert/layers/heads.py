"""BERT's output heads: pooler, masked-LM head, next-sentence head, and masked mean pooling."""

import keras
from keras import ops

from keras_bert.layers.activations import get_activation


def _truncated_normal(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="keras_bert")
class BertPooler(keras.layers.Layer):
    """Dense + tanh over the first (`[CLS]`) token, BERT's `pooled_output`.

    Args:
        hidden_size: int. Output width.
        initializer_range: float. Stddev of the truncated-normal initializer.
    """

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(hidden_size, activation="tanh",
                                        kernel_initializer=_truncated_normal(initializer_range),
                                        dtype=self.dtype_policy, name="dense")

    def build(self, sequence_shape):
        self.dense.build((sequence_shape[0], sequence_shape[-1]))

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0, :])

    def compute_output_shape(self, sequence_shape):
        return (sequence_shape[0], self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config


def gather_positions(sequence, positions):
    """Gathers `sequence[b, positions[b, p]]` -> `[batch, P, hidden]` with one flat gather."""
    batch, seq_length, hidden = ops.shape(sequence)[0], ops.shape(sequence)[1], ops.shape(sequence)[2]
    positions = ops.cast(positions, "int32")
    offsets = ops.arange(batch, dtype="int32")[:, None] * seq_length
    flat_positions = ops.reshape(positions + offsets, (-1,))
    flat_sequence = ops.reshape(sequence, (-1, hidden))
    gathered = ops.take(flat_sequence, flat_positions, axis=0)
    return ops.reshape(gathered, (batch, ops.shape(positions)[1], hidden))


@keras.saving.register_keras_serializable(package="keras_bert")
class MaskedLMHead(keras.layers.Layer):
    """BERT's masked-LM head, computed only at the masked positions it is given.

    Gathers the hidden states at `masked_positions`, then dense + activation +
    LayerNorm, then projects onto the vocabulary with the transposed
    token-embedding matrix (weights tied to `token_embedding`) plus a bias.
    Logits are float32.

    Args:
        vocab_size: int. Number of word pieces.
        hidden_size: int. Model width.
        hidden_act: str. Transform activation (see `BertConfig.hidden_act`).
        layer_norm_epsilon: float. LayerNorm epsilon.
        initializer_range: float. Stddev of the truncated-normal initializer.
        token_embedding: `keras.layers.Embedding` or None. The encoder's token
            embedding whose matrix is the output projection. Not serialized: the
            model that owns the head passes it again when it is rebuilt. With
            None the head owns an untied output matrix.

    Call arguments:
        sequence_output: float tensor `[batch, seq, hidden]`.
        masked_positions: int tensor `[batch, P]` of positions to predict.
    """

    def __init__(self, vocab_size, hidden_size, hidden_act="gelu", layer_norm_epsilon=1e-12,
                 initializer_range=0.02, token_embedding=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        # === Layers ===
        self.token_embedding = token_embedding
        # The activation inside the Dense, so it fuses with the matmul (see `TransformerBlock`).
        self.transform = keras.layers.Dense(hidden_size, activation=get_activation(hidden_act),
                                            kernel_initializer=_truncated_normal(initializer_range),
                                            dtype=self.dtype_policy, name="transform")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype="float32",
                                                          name="layer_norm")

    def build(self, sequence_output_shape, masked_positions_shape=None):
        self.transform.build((None, None, self.hidden_size))
        self.layer_norm.build((None, None, self.hidden_size))
        if self.token_embedding is None:
            self.output_embeddings = self.add_weight(
                name="output_embeddings", shape=(self.vocab_size, self.hidden_size),
                initializer=_truncated_normal(self.initializer_range))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.vocab_size,), initializer="zeros")

    @property
    def output_matrix(self):
        """The `[vocab, hidden]` output projection (the token-embedding matrix when tied)."""
        if self.token_embedding is None:
            return self.output_embeddings
        if self.token_embedding.quantization_mode == "int8":  # int8 rows, one scale per row
            return ops.divide(ops.cast(self.token_embedding.embeddings, self.compute_dtype),
                              ops.expand_dims(ops.cast(self.token_embedding.embeddings_scale, self.compute_dtype), -1))
        return self.token_embedding.embeddings

    def call(self, sequence_output, masked_positions):
        batch, predictions = ops.shape(masked_positions)[0], ops.shape(masked_positions)[1]
        # 2D `[batch * P, hidden]` rows: plain MatMuls (faster than 3D broadcasting on CPU).
        x = ops.reshape(gather_positions(sequence_output, masked_positions), (-1, self.hidden_size))
        x = self.layer_norm(self.transform(x))
        x = ops.cast(x, self.compute_dtype)
        matrix = ops.cast(self.output_matrix, self.compute_dtype)
        logits = ops.matmul(x, ops.transpose(matrix))
        logits = ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")
        return ops.reshape(logits, (batch, predictions, self.vocab_size))

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape):
        return tuple(masked_positions_shape) + (self.vocab_size,)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size, hidden_act=self.hidden_act,
                      layer_norm_epsilon=self.layer_norm_epsilon, initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class NextSentenceHead(keras.layers.Layer):
    """Two-way classifier on the pooled output: is segment B the real next sentence?

    Label 0 means "B follows A", 1 means "B is random", as in the original BERT.

    Args:
        initializer_range: float. Stddev of the truncated-normal initializer.
    """

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(2, kernel_initializer=_truncated_normal(initializer_range),
                                        dtype=self.dtype_policy, name="dense")

    def build(self, pooled_shape):
        self.dense.build(pooled_shape)

    def call(self, pooled_output):
        return ops.cast(self.dense(pooled_output), "float32")

    def compute_output_shape(self, pooled_shape):
        return (pooled_shape[0], 2)

    def get_config(self):
        config = super().get_config()
        config.update(initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the hidden states over real (non-padding) tokens, in float32.

    Call arguments:
        sequence_output: float tensor `[batch, seq, hidden]`.
        padding_mask: int tensor `[batch, seq]`, 1 for real tokens.
    """

    def call(self, sequence_output, padding_mask):
        mask = ops.cast(padding_mask, "float32")[:, :, None]
        total = ops.sum(ops.cast(sequence_output, "float32") * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1e-9)

    def compute_output_shape(self, sequence_output_shape, padding_mask_shape=None):
        return (sequence_output_shape[0], sequence_output_shape[-1])
