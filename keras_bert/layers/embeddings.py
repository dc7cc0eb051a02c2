"""Token + position + segment embeddings, as in BERT."""

import keras
from keras import ops

from keras_bert.layers.dropout import Dropout


@keras.saving.register_keras_serializable(package="keras_bert")
class BertEmbeddings(keras.layers.Layer):
    """Sums token, learned position and segment embeddings, then LayerNorm and dropout.

    The LayerNorm runs in float32 under mixed precision.

    Args:
        vocab_size: int. Number of word pieces.
        hidden_size: int. Embedding width.
        max_position_embeddings: int. Number of learned positions.
        type_vocab_size: int. Number of segment ids.
        dropout: float. Dropout rate after the LayerNorm.
        layer_norm_epsilon: float. LayerNorm epsilon.
        initializer_range: float. Stddev of the truncated-normal initializer.

    Call arguments:
        token_ids: int tensor `[batch, seq]`.
        segment_ids: int tensor `[batch, seq]`.

    Example:
    >>> layer = BertEmbeddings(vocab_size=10, hidden_size=8, max_position_embeddings=16)
    >>> tuple(layer(ops.ones((2, 5), "int32"), ops.zeros((2, 5), "int32")).shape)
    (2, 5, 8)
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings=512, type_vocab_size=2,
                 dropout=0.1, layer_norm_epsilon=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        # === Layers ===
        initializer = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=initializer, dtype=self.dtype_policy,
            name="token_embedding")
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=initializer, dtype=self.dtype_policy,
            name="segment_embedding")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype="float32", name="layer_norm")
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.segment_embedding.build(token_ids_shape)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_position_embeddings, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range))
        self.layer_norm.build(tuple(token_ids_shape) + (self.hidden_size,))

    def call(self, token_ids, segment_ids, training=None):
        seq_length = ops.shape(token_ids)[1]
        positions = ops.cast(self.position_embeddings[:seq_length], self.compute_dtype)
        x = self.token_embedding(token_ids) + self.segment_embedding(segment_ids) + positions[None]
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
            dropout=self.dropout, layer_norm_epsilon=self.layer_norm_epsilon,
            initializer_range=self.initializer_range)
        return config
