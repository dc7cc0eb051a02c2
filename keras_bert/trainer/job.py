"""What every training job shares: the strategy / precision / seed preamble, the optimizer, and the CLI wrapper."""

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


def run(main, argv=None):
    """Runs a job's `main`: a bad flag, config or data file is one line on stderr and exit status 2."""
    from keras_bert.data.errors import DataError
    from keras_bert.tokenization import VocabularyError

    try:
        return main(argv)
    except (ConfigError, DataError, VocabularyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
