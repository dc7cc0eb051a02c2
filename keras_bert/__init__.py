"""keras_bert: BERT for TensorFlow/Keras 3, from raw text to a TF Serving endpoint.

Example:
>>> import keras_bert
>>> config = keras_bert.BertConfig.from_preset("bert_tiny")
>>> encoder = keras_bert.BertEncoder(config)
>>> pretrainer = keras_bert.BertPretrainer(encoder)
"""

import os

# TensorFlow is the default backend; KERAS_BACKEND still wins when set.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_bert import layers  # noqa: E402
from keras_bert import models  # noqa: E402
from keras_bert.config import BertConfig  # noqa: E402
from keras_bert.models import (BertClassifier, BertEmbedder, BertEncoder, BertPretrainer,  # noqa: E402
                               BertExtractiveSummarizer, BertQuestionAnswerer, BertRegressor,
                               BertTokenClassifier)
from keras_bert.saving import load, load_tokenizer, load_tokenizer_settings, save  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name):
    # Subpackages that need TensorFlow-only libraries load on first use.
    if name in ("checkpoints", "tokenization", "data", "optimization", "export", "trainer"):
        import importlib

        return importlib.import_module(f"keras_bert.{name}")
    raise AttributeError(f"module 'keras_bert' has no attribute {name!r}")
