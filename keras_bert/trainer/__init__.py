"""Training library for the `training/` jobs (TensorFlow): config, strategies, resumable `fit`, TensorBoard, metrics."""

from keras_bert.trainer.checkpointing import CheckpointCallback, ResumableDataset, TrainingState
from keras_bert.trainer.config import (ConfigError, JobArgumentParser, JobHelpFormatter, LoopConfig, add_config_flags,
                                       config_from_dict, load_config, parse_job_config)
from keras_bert.trainer.loop import check_not_empty, fit_resumable
from keras_bert.trainer.strategy import check_batch_size, create_strategy, is_chief
from keras_bert.trainer.tensorboard import TensorBoardLogger, read_scalars, truncate_event_files
from keras_bert.trainer.job import build_optimizer, data_file, prepare, run, save_task_model
