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
)
