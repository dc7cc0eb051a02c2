"""BERT models: the encoder network, the pretrainer and task models (Keras 3, backend-agnostic)."""

from keras_bert.models.encoder import BertEncoder
from keras_bert.models.losses import MaskedAccuracy, MaskedSparseCategoricalCrossentropy
from keras_bert.models.pretrainer import BertPretrainer
from keras_bert.models.task import Task
from keras_bert.models.tasks import (BertClassifier, BertEmbedder, BertQuestionAnswerer, BertRegressor,
                                     BertTokenClassifier)
from keras_bert.models.distiller import BertDistiller
from keras_bert.models.summarizer import BertExtractiveSummarizer
