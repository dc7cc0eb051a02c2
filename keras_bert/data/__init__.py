"""Data pipelines: pretraining instances and TFRecords, fine-tuning readers, bucketing."""

from keras_bert.data.errors import DataError, SkipCounter
from keras_bert.data.pretraining import (
    FEATURE_NAMES,
    PretrainingStats,
    TrainingInstance,
    create_masked_lm_predictions,
    create_pretraining_instances,
    detect_compression,
    dynamic_mask,
    infer_shapes,
    instance_to_example,
    parse_pretraining_example,
    pretraining_dataset,
    read_documents,
    shard_statistics,
    write_instances,
    write_pretraining_data,
)
from keras_bert.data.batching import batch_packed_examples
from keras_bert.data.classification import (
    TextExamples,
    classification_dataset,
    read_assin2,
    read_text_examples,
    text_examples_dataset,
)
from keras_bert.data.ner import (
    IGNORE_LABEL,
    NerExamples,
    align_word_labels,
    conll_dataset,
    labels_from_tags,
    ner_examples_dataset,
    read_conll,
    read_harem,
)
from keras_bert.data.squad import SquadWindow, read_squad, read_squad_records, squad_dataset, squad_windows
