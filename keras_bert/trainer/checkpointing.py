"""Step-exact checkpoints: model, optimizer, step and data position, in a `tf.train.CheckpointManager`.

Keras 3's `BackupAndRestore` restarts an interrupted epoch from batch 0, so it is
not step-exact. Here a checkpoint holds every model variable (dropout seed states
included), the optimizer (moments, iteration count, loss scale, accumulators),
the step and, on one replica, the `tf.data` iterator itself; with several
replicas (whose distributed iterators TensorFlow cannot checkpoint) the data
position is restored by skipping the consumed batches of the deterministic
pipeline. `ResumableDataset` hands `model.fit` that one iterator, so the data
continues where it stopped across `fit` calls and restarts.
"""

import json
import os
import signal

import keras
import tensorflow as tf
from tensorflow.python.distribute import input_lib

from keras_bert.trainer.config import ConfigError

SIGNATURE_FILE = "model_signature.json"


class ResumableDataset(input_lib.DistributedDataset):
    """What `model.fit` iterates over: always the same (checkpointable) iterator.

    Keras' `TFEpochIterator` accepts a `DistributedDataset` as is and calls `iter()`
    on it once per `fit` (with `steps_per_epoch` set), so each `fit` continues the
    iterator instead of starting the data over.

    Args:
        iterator: a `tf.data` iterator or a `tf.distribute` distributed iterator.
    """

    def __init__(self, iterator):  # noqa: super().__init__ builds a new pipeline; we only wrap one.
        self._iterator = iterator

    def __iter__(self):
        return self._iterator

    @property
    def element_spec(self):
        return self._iterator.element_spec

    @property
    def cardinality(self):
        return tf.data.INFINITE_CARDINALITY

    @property
    def _built(self):
        return True

    def reduce(self, initial_state, reduce_func):
        raise NotImplementedError("ResumableDataset is only for model.fit")


def distribute_for_resume(strategy, dataset, start_step):
    """Returns `(iterator, checkpointable)` for `dataset` positioned at `start_step` batches.

    On one replica the plain `tf.data` iterator is returned and is checkpointed
    (`checkpointable=True`); the checkpoint restore moves it. With several replicas,
    the dataset skips `start_step` global batches before it is distributed.

    Args:
        strategy: `tf.distribute.Strategy`.
        dataset: `tf.data.Dataset` batched by the global batch size, deterministic and repeating.
        start_step: int. Batches already consumed (restored step).
    """
    if strategy.num_replicas_in_sync == 1 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return iter(dataset), True
    if start_step:
        dataset = dataset.skip(start_step)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)
    return iter(strategy.experimental_distribute_dataset(dataset)), False


def model_signature(model):
    """What must match to resume: the model class, the encoder config and variable shapes."""
    encoder = getattr(model, "encoder", model)
    config = encoder.config.to_dict() if hasattr(encoder, "config") else {}
    return {"model_class": type(model).__name__, "encoder_config": config,
            "variables": {v.path: list(v.shape) for v in model.variables}}


class TrainingState:
    """Model, optimizer, step and data iterator under one `tf.train.CheckpointManager`.

    Args:
        directory: str. The checkpoint directory (`OUTPUT/checkpoints`).
        model: compiled `keras.Model` (its optimizer is built here).
        iterator: the training iterator, or None when it is not checkpointable.
        keep: int. Newest checkpoints kept.
        chief: bool. Only the chief writes to `directory`; other workers write to a temporary one.
    """

    def __init__(self, directory, model, iterator=None, keep=3, chief=True):
        self.directory = directory
        self.model = model
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        model.optimizer.build(model.trainable_variables)
        variables = {v.path.replace("/", "."): v for v in model.variables}
        objects = dict(model=tf.train.Checkpoint(**variables), optimizer=model.optimizer, step=self.step)
        if iterator is not None:
            objects["data"] = iterator
        self.checkpoint = tf.train.Checkpoint(**objects)
        write_dir = directory if chief else os.path.join(directory, f".worker_{os.getpid()}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=keep)
        self.chief = chief

    def check_signature(self):
        """Raises a clear error when `directory` holds checkpoints of a different model."""
        path = os.path.join(self.directory, SIGNATURE_FILE)
        signature = model_signature(self.model)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            if saved != json.loads(json.dumps(signature)):
                diff = _describe_difference(saved, signature)
                raise ConfigError(f"{self.directory} holds checkpoints of a different model ({diff}); "
                                  f"use another --output-dir or the same model config")
        elif tf.train.latest_checkpoint(self.directory):
            raise ConfigError(f"{self.directory} holds checkpoints without {SIGNATURE_FILE}; not resuming from "
                              f"checkpoints of unknown origin")

    def restore_or_start(self):
        """Restores the newest readable checkpoint; returns the step to start from (0 when none).

        A newest checkpoint that cannot be read (e.g. truncated by a crash while it was
        written) is skipped and the previous one is used.
        """
        self.check_signature()
        candidates = self._checkpoints_newest_first()
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:  # IndexError: truncated data
                print(f"[checkpoint] cannot restore {path} ({type(e).__name__}: {str(e)[:200]}); "
                      f"trying the previous one")
                continue
            print(f"[checkpoint] resumed from {path} at step {int(self.step.numpy())}")
            return int(self.step.numpy())
        if candidates:
            raise ConfigError(f"no readable checkpoint in {self.directory}: {candidates}")
        return 0

    def _checkpoints_newest_first(self):
        """Checkpoint prefixes in the chief's directory, newest step first.

        The manager's listing (the `checkpoint` file) is rewritten after a checkpoint's files: a kill
        between the two leaves a complete `ckpt-N` on disk that the listing lacks, so files count too.
        """
        listing = tf.train.get_checkpoint_state(self.directory)
        paths = list(listing.all_model_checkpoint_paths) if listing else []
        paths += [p[: -len(".index")] for p in tf.io.gfile.glob(os.path.join(self.directory, "ckpt-*.index"))]
        by_step = {}
        for path in paths:
            suffix = os.path.basename(path).rsplit("-", 1)[-1]
            if suffix.isdigit():
                by_step.setdefault(int(suffix), path)
        return [by_step[step] for step in sorted(by_step, reverse=True)]

    def save(self, step):
        """Writes a checkpoint for `step` (and the model signature next to it)."""
        self.step.assign(step)
        if self.chief:
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, SIGNATURE_FILE)
            if not os.path.exists(path):
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(model_signature(self.model), f, indent=1, sort_keys=True)
        saved = self.manager.save(checkpoint_number=step)
        if not self.chief:
            tf.io.gfile.rmtree(self.manager.directory)
        return saved


def _describe_difference(saved, current):
    if saved.get("model_class") != current["model_class"]:
        return f"model class {saved.get('model_class')} != {current['model_class']}"
    for key, value in current["encoder_config"].items():
        if saved.get("encoder_config", {}).get(key) != value:
            return f"encoder {key}: checkpoint {saved.get('encoder_config', {}).get(key)!r}, now {value!r}"
    return "variable shapes differ"


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every` steps (at the end of a Keras epoch) and on SIGTERM, then stops cleanly.

    Args:
        state: `TrainingState`.
        start_step: int. The step `fit` starts from.
        every: int. Steps between checkpoints.
    """

    def __init__(self, state, start_step, every):
        super().__init__()
        self.state = state
        self.global_step = start_step
        self.every = every
        self.terminated = False
        self._previous_handler = None

    def on_train_begin(self, logs=None):
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def on_train_end(self, logs=None):
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def _on_sigterm(self, signum, frame):
        print("[checkpoint] SIGTERM: saving a checkpoint after this step, then stopping")
        self.terminated = True

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        if self.terminated and not self.model.stop_training:
            self.state.save(self.global_step)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # Runs after the TensorBoard logger (listed before it), so a checkpoint never
        # precedes the scalars of its own step.
        if self.global_step % self.every == 0 and not self.terminated:
            self.state.save(self.global_step)
