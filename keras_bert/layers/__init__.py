"""Keras layers of BERT, written with `keras.ops` only (TensorFlow, JAX and PyTorch backends)."""

from keras_bert.layers.activations import get_activation
from keras_bert.layers.attention import SelfAttention, padding_mask_to_bias
from keras_bert.layers.dropout import Dropout, keep_mask
from keras_bert.layers.embeddings import BertEmbeddings
from keras_bert.layers.heads import (BertPooler, MaskedLMHead, MaskedMeanPooling, NextSentenceHead,
                                     gather_positions)
from keras_bert.layers.transformer_block import TransformerBlock
