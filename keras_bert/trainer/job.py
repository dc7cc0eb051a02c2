"""What every training job shares: the strategy / precision / seed preamble, the optimizer, the final save of a task
model, and the CLI wrapper."""

import json
import os
import sys

import keras

from keras_bert.optimization import WarmupDecaySchedule, create_optimizer, set_mixed_precision
from keras_bert.trainer.config import ConfigError
from keras_bert.trainer.strategy import check_batch_size, create_strategy


def prepare(config):
    """Creates the strategy, checks the global batch size, sets the dtype policy and the seeds.

    Args:
        config: a `LoopConfig` (strategy, batch_size, mixed_precision, seed).

    Returns:
        The `tf.distribute.Strategy`.
    """
    strategy = create_strategy(config.strategy)
    check_batch_size(strategy, config.batch_size)
    set_mixed_precision(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    return strategy


def build_optimizer(config, total_steps):
    """BERT's warmup-then-decay schedule and optimizer from a `LoopConfig`, for `total_steps` steps."""
    warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_proportion * total_steps)
    schedule = WarmupDecaySchedule(config.learning_rate, min(warmup, total_steps), total_steps,
                                   config.end_learning_rate, config.decay_power)
    return create_optimizer(config.optimizer, schedule, weight_decay=config.weight_decay, clipnorm=config.clipnorm,
                            accumulation_steps=config.accumulation_steps, mixed_precision=config.mixed_precision)


# keras_bert/trainer/job.py -> the checkout (an editable install runs from it).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data_file(path, flag):
    """`path` from the current directory, else from the checkout holding keras_bert (the recipes' root).

    Args:
        path: str or None. A data file named by a flag or config key.
        flag: str. The flag, named in the error when the file is missing.
    """
    if not path:
        raise ConfigError(f"{flag} is required (or set it in --config)")
    for candidate in (path, os.path.join(CHECKOUT, path)):
        if os.path.exists(candidate):
            return candidate
    raise ConfigError(f"{flag}: data file not found: {path}")


def save_task_model(job, config, strategy, result, task, model, preprocessor, dev, metrics, predictions, tokenizer):
    """The end of a task training job: the final metrics to TensorBoard and, on the chief, `metrics.json`, the dev
    predictions and the text-in model in `config.output_dir`; then the `[job]` metrics line.

    Args:
        job: str. The job's name in the printed line, e.g. "finetune".
        config: the job's config (`output_dir`, `task`).
        strategy: the job's `tf.distribute.Strategy`.
        result: what `fit_resumable` returned (`step`, `logger`).
        task: the `keras_bert.tasks` task of the model.
        model: the trained task model; its `preprocessor` is set to `preprocessor` before saving.
        preprocessor: the `BertTextPreprocessor` the saved model carries.
        dev: the dev `TaskData` the predictions are of.
        metrics: dict. The final metrics (written and printed).
        predictions: the dev predictions from `task.evaluate`.
        tokenizer: the tokenizer `task.write_predictions` decodes with.
    """
    import keras_bert
    from keras_bert import tasks
    from keras_bert.trainer.strategy import is_chief

    if result["logger"] is not None:
        result["logger"].write("validation", result["step"], metrics)
    if is_chief(strategy):
        tasks.write_metrics(config.output_dir, metrics, result["step"])
        task.write_predictions(config.output_dir, dev, predictions, tokenizer)
        model.preprocessor = preprocessor
        keras_bert.save(model, config.output_dir)
    print(f"[{job}] {config.task} step {result['step']}: " + json.dumps(metrics))


def run(main, argv=None):
    """Runs a job's `main`: a bad flag, config or data file is one line on stderr and exit status 2."""
    from keras_bert.data.errors import DataError
    from keras_bert.tokenization import VocabularyError

    try:
        return main(argv)
    except (ConfigError, DataError, VocabularyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
