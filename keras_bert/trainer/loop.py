"""`fit_resumable`: `model.fit` as a step-exact, resumable training loop.

One Keras "epoch" is `log_every` steps, so Keras' per-epoch metric means are the
TensorBoard scalars of that window, and a checkpoint (every `checkpoint_every`
steps, a multiple of `log_every`) always falls on an epoch boundary:

    model.fit(data, epochs=total_steps // log_every, steps_per_epoch=log_every,
              initial_epoch=restored_step // log_every, callbacks=[logger, checkpoints])

`data` always yields from the same iterator, which is part of the checkpoint.
"""

import contextlib
import os

from keras_bert.trainer.checkpointing import CheckpointCallback, ResumableDataset, TrainingState, distribute_for_resume
from keras_bert.trainer.config import ConfigError
from keras_bert.trainer.strategy import is_chief
from keras_bert.trainer.tensorboard import TensorBoardLogger


def check_not_empty(dataset, name="training dataset"):
    """Raises a `ConfigError` when `dataset` yields nothing (before any checkpoint is touched)."""
    for _ in dataset.take(1):
        return
    raise ConfigError(f"the {name} is empty: no batch could be read (check the files and the batch size)")


def fit_resumable(model, dataset, *, strategy, output_dir, total_steps, log_every, checkpoint_every,
                  keep_checkpoints=3, global_batch_size, validate=None, validate_every=None, hparams=None,
                  tokens_per_example=None, profile_steps=None, verbose="auto"):
    """Trains `model` on `dataset` up to `total_steps`, resuming from `output_dir/checkpoints`.

    Args:
        model: compiled `keras.Model`, built under `strategy.scope()`.
        dataset: `tf.data.Dataset` of global batches; deterministic and repeating.
        strategy: `tf.distribute.Strategy`.
        output_dir: str. Logs go to `logs/`, checkpoints to `checkpoints/`.
        total_steps: int. Steps (batches) to train in all.
        log_every: int. Steps per TensorBoard scalar / Keras epoch.
        checkpoint_every: int. Steps per checkpoint; a multiple of `log_every`.
        keep_checkpoints: int. Checkpoints kept.
        global_batch_size: int. Examples per step, for throughput.
        validate: callable or None. `validate(model) -> {metric: value}` for the validation run.
        validate_every: int or None. Steps between validations.
        hparams: dict or None. Hyperparameters for TensorBoard's hparams plugin.
        tokens_per_example: float or None. For `tokens_per_second`.
        profile_steps: tuple or None. Steps to profile.
        verbose: Keras `fit` verbosity.

    Returns:
        dict: `{"step", "terminated", "logger"}`.
    """
    chief = is_chief(strategy)
    checkpoint_dir = os.path.join(output_dir, "checkpoints")

    # --- Restore (model, optimizer, step, data position) or start fresh ---
    with strategy.scope():
        probe = TrainingState(checkpoint_dir, model, None, keep_checkpoints, chief)
        probe.check_signature()
        iterator, checkpointable = distribute_for_resume(strategy, dataset, 0)
        if not checkpointable:  # Distributed iterators can't be saved: skip the consumed batches instead.
            start_step = probe.restore_or_start()
            iterator, _ = distribute_for_resume(strategy, dataset, start_step)
            state = probe
        else:
            state = TrainingState(checkpoint_dir, model, iterator, keep_checkpoints, chief)
            start_step = state.restore_or_start()
    if start_step >= total_steps:
        print(f"[train] already at step {start_step} >= {total_steps}; nothing to do")
        return {"step": start_step, "terminated": False, "logger": None}

    # --- Callbacks: TensorBoard first, then checkpoints (a checkpoint follows its step's scalars) ---
    logger = TensorBoardLogger(os.path.join(output_dir, "logs"), start_step, global_batch_size,
                               tokens_per_example=tokens_per_example, validate=validate,
                               validate_every=validate_every, hparams=hparams, profile_steps=profile_steps,
                               chief=chief)
    checkpoints = CheckpointCallback(state, start_step, checkpoint_every)
    callbacks = [logger, checkpoints]
    data = ResumableDataset(iterator)
    with _no_batch_consumed_by_symbolic_build(model, strategy, dataset):
        return _fit_windows(model, data, state, logger, checkpoints, callbacks, start_step, total_steps, log_every,
                            checkpoint_every, verbose)


@contextlib.contextmanager
def _no_batch_consumed_by_symbolic_build(model, strategy, dataset):
    """Stops Keras' `fit` from taking a batch of the shared iterator to build the model.

    Under a `tf.distribute` strategy, Keras 3's TF `fit` first calls `next()` on the
    training iterator to build the model symbolically, and drops that batch: with one
    iterator shared across `fit` calls, every `fit` would skip a batch (the data would
    no longer match a one-device run, nor the step of a checkpoint). The model is
    built here once from a batch of a fresh iterator, and that step is skipped.
    """
    if getattr(model, "_distribute_strategy", None) is None:  # Keras builds at trace time: nothing to do.
        yield
        return
    batch = next(iter(dataset))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    try:
        yield
    finally:
        del model._maybe_symbolic_build


def _fit_windows(model, data, state, logger, checkpoints, callbacks, start_step, total_steps, log_every,
                 checkpoint_every, verbose):
    # --- Train: finish a window cut short by SIGTERM, whole windows, then a last short window ---
    step = start_step
    if step % log_every:
        steps = min(log_every - step % log_every, total_steps - step)
        model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose)
        step = checkpoints.global_step
    whole_windows = total_steps // log_every
    if not checkpoints.terminated and step // log_every < whole_windows:
        model.fit(data, epochs=whole_windows, initial_epoch=step // log_every, steps_per_epoch=log_every,
                  callbacks=callbacks, verbose=verbose)
        step = checkpoints.global_step
    if not checkpoints.terminated and step < total_steps:
        model.fit(data, epochs=1, steps_per_epoch=total_steps - step, callbacks=callbacks, verbose=verbose)
        step = checkpoints.global_step
    if not checkpoints.terminated and step % checkpoint_every:
        state.save(step)  # The final step always has a checkpoint.
    return {"step": step, "terminated": checkpoints.terminated, "logger": logger}
