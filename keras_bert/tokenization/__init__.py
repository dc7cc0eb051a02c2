"""BERT tokenization: vocabulary learning and loading, the in-graph WordPiece tokenizer and the packer."""

from keras_bert.tokenization.graph_ops import disallowed_ops, list_graph_ops, load_allowlist
from keras_bert.tokenization.packer import BertPacker, keep_first, truncated_pair_lengths
from keras_bert.tokenization.tokenizer import BertTokenizer
from keras_bert.tokenization.vocabulary import (
    RESERVED_TOKENS,
    VocabularyError,
    load_vocabulary,
    validate_vocabulary,
    write_vocabulary,
)
from keras_bert.tokenization.wordpiece_learner import (
    count_words,
    learn_vocabulary,
    learn_vocabulary_from_counts,
    learn_vocabulary_from_sample,
)

__all__ = [
    "BertPacker",
    "BertTokenizer",
    "RESERVED_TOKENS",
    "VocabularyError",
    "count_words",
    "disallowed_ops",
    "keep_first",
    "learn_vocabulary",
    "learn_vocabulary_from_counts",
    "learn_vocabulary_from_sample",
    "list_graph_ops",
    "load_allowlist",
    "load_vocabulary",
    "truncated_pair_lengths",
    "validate_vocabulary",
    "write_vocabulary",
]
