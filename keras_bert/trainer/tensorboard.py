"""TensorBoard logging for `model.fit`: `train` and `validation` runs, hparams, throughput, profiles.

Scalars are written every `log_every` steps at the global step, so a resumed run
continues the same curves. On resume, events after the restored step (written by
the interrupted run after its last checkpoint) are removed first, so no step is
logged twice.
"""

import glob
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api


def truncate_event_files(log_dir, last_step):
    """Drops summaries with step > `last_step` (and a truncated tail) from the event files under `log_dir`.

    Args:
        log_dir: str. A run directory (e.g. `OUTPUT/logs/train`).
        last_step: int. The restored step.
    """
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        kept, dropped = [], False
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.HasField("summary") and event.step > last_step:
                    dropped = True
                    continue
                kept.append(record.numpy())
        except tf.errors.DataLossError:  # The killed run stopped in the middle of a record.
            dropped = True
        if dropped:
            temporary = path + ".tmp"
            with tf.io.TFRecordWriter(temporary) as writer:
                for record in kept:
                    writer.write(record)
            os.replace(temporary, path)


def read_scalars(log_dir):
    """Reads the scalars of a run directory: `{tag: [(step, value), ...]}` in file order."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                        number = float(tf.make_ndarray(value.tensor))
                    elif value.HasField("simple_value"):
                        number = value.simple_value
                    else:
                        continue
                    scalars.setdefault(value.tag, []).append((event.step, number))
        except tf.errors.DataLossError:
            pass
    return scalars


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes train scalars every Keras epoch (= `log_every` steps) and validation metrics.

    The `logs` Keras passes at the end of an epoch are the means over that epoch,
    i.e. over the last `log_every` steps.

    Args:
        log_dir: str. `OUTPUT/logs`; runs go to `train/` and `validation/`.
        start_step: int. The step `fit` starts from (restored step).
        global_batch_size: int. Examples per step (all replicas, all accumulated batches).
        tokens_per_example: float or None. Mean non-padding tokens per example, for `tokens_per_second`.
        validate: callable or None. `validate(model) -> {name: float}`, run every `validate_every` steps.
        validate_every: int or None. Steps between validations.
        hparams: dict or None. Written once, at the start of a fresh run (hparams plugin).
        profile_steps: tuple of two ints or None. Profile these steps (inclusive start, exclusive end).
        chief: bool. Only the chief process writes.
    """

    def __init__(self, log_dir, start_step, global_batch_size, tokens_per_example=None, validate=None,
                 validate_every=None, hparams=None, profile_steps=None, chief=True):
        super().__init__()
        self.log_dir = log_dir
        self.global_step = start_step
        self.start_step = start_step
        self.global_batch_size = global_batch_size
        self.tokens_per_example = tokens_per_example
        self.validate = validate
        self.validate_every = validate_every
        self.hparams = hparams
        self.profile_steps = profile_steps
        self.chief = chief
        self.train_writer = None
        self.validation_writer = None
        self._window_start = None
        self._window_first_step = start_step
        self.last_validation = None

    def _writers(self):
        if self.train_writer is None and self.chief:
            for run in ("train", "validation"):
                truncate_event_files(os.path.join(self.log_dir, run), self.start_step)
            self.train_writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
            self.validation_writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "validation"))
            if self.start_step == 0 and self.hparams:
                with self.train_writer.as_default():
                    hparams_api.hparams({k: v for k, v in self.hparams.items()
                                         if isinstance(v, (bool, int, float, str))})

    def on_train_begin(self, logs=None):
        self._writers()
        self._window_start = time.perf_counter()
        self._window_first_step = self.global_step

    def on_train_batch_begin(self, batch, logs=None):
        if self.profile_steps and self.chief and self.global_step == self.profile_steps[0]:
            tf.profiler.experimental.start(os.path.join(self.log_dir, "train"))

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        if self.profile_steps and self.chief and self.global_step == self.profile_steps[1]:
            tf.profiler.experimental.stop()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        steps = self.global_step - self._window_first_step
        scalars = {k: float(v) for k, v in (logs or {}).items()
                   if not k.startswith("val_") and k != "learning_rate" and np.ndim(v) == 0}
        scalars["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        scalars["examples_per_second"] = steps * self.global_batch_size / elapsed
        if self.tokens_per_example:
            scalars["tokens_per_second"] = scalars["examples_per_second"] * self.tokens_per_example
        self.write("train", self.global_step, scalars)
        if self.validate is not None and self.validate_every and self.global_step % self.validate_every == 0:
            self.run_validation()
        self._window_start = time.perf_counter()
        self._window_first_step = self.global_step

    def run_validation(self):
        """Runs `validate(model)` now and writes its metrics at the current step."""
        if self.validate is None:
            return None
        metrics = {k: float(v) for k, v in self.validate(self.model).items()}
        self.write("validation", self.global_step, metrics)
        self.last_validation = dict(metrics, step=self.global_step)
        print(f"[validation] step {self.global_step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    def write(self, run, step, scalars):
        """Writes `{name: value}` to the `train` or `validation` run at `step`."""
        if not self.chief:
            return
        self._writers()
        writer = self.train_writer if run == "train" else self.validation_writer
        with writer.as_default():
            for name, value in scalars.items():
                tf.summary.scalar(name, value, step=step)
        writer.flush()


def mean_tokens_per_example(dataset, batches=20):
    """Mean non-padding tokens per example over the first `batches` batches of `(x, y)` data."""
    total, examples = 0.0, 0
    for x, _ in dataset.take(batches):
        mask = x["padding_mask"].numpy()
        total += float(mask.sum())
        examples += mask.shape[0]
    return total / max(examples, 1)
