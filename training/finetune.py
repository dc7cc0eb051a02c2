"""Fine-tunes a BERT task model with `model.fit` on your own files or a recipe, validating on dev.

    python -m training.finetune --task classification --init DIR --train-file train.csv \
        --validation-file dev.csv --text-column review --label-column stars --output-dir DIR2
    python -m training.finetune --config training/configs/finetune_sst2.yaml --init DIR --output-dir DIR2

`--task` is what the model does (`classification`, `regression`, `token_classification`,
`question_answering`); the recipes in training/configs/ set a data set's files, columns and
hyperparameters. `--init` is a `keras_bert.save` directory, a Hugging Face BERT directory or a
Google TF1 checkpoint directory; its vocabulary and casing drive tokenization. Every key of the
config is also a flag (`--help` lists them). Writes TensorBoard logs to DIR2/logs, checkpoints to
DIR2/checkpoints, `metrics.json` and the dev predictions (`predictions.tsv`, or `predictions.json`
for question answering), and the text-in model (`keras_bert.load(DIR2).predict(texts)`) to DIR2.
"""

import dataclasses
import math
import sys
import typing

from keras_bert import tasks
from keras_bert.tasks.preprocessing import BertTextPreprocessor, load_pretrained
from keras_bert.trainer import (ConfigError, LoopConfig, build_optimizer, check_not_empty, data_file, fit_resumable,
                                parse_job_config, prepare, run, save_task_model)
from keras_bert.trainer.tensorboard import mean_tokens_per_example


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(LoopConfig, tasks.DataOptions):
    """The fine-tuning job's config: the loop keys, the data keys and these.

    Args:
        task: str. What the model does.
        init: str or None. Pretrained model directory: a `keras_bert.save` directory, a Hugging Face BERT
            directory or a Google TF1 checkpoint directory.
        train_file: str or None. Training data (a relative path is looked up from the current directory,
            then from the repository root).
        validation_file: str or None. Dev data for the validation runs and the final metrics.
        epochs: float. Passes over the training data (sets the number of steps).
        steps: int or None. Optimizer steps; overrides `epochs`.
        eval_every: int or None. Steps between validations; None validates at the end only.
        max_train_examples: int or None. Use only the first N training examples.
        dropout: float or None. Head dropout; None uses the encoder's.
        model_options: dict. More arguments of the task model, those its kind lists in `model_options`
            (summarization: `pooling`, `positive_weight`, `trainable_encoder_layers`, `num_inter_layers`);
            config file only.
    """

    choices = {**LoopConfig.choices, **tasks.DataOptions.choices, "task": tasks.TRAINABLE_KINDS}

    task: str = "classification"
    init: typing.Optional[str] = None
    train_file: typing.Optional[str] = None
    validation_file: typing.Optional[str] = None
    epochs: float = 1.0
    steps: typing.Optional[int] = None
    eval_every: typing.Optional[int] = None
    max_train_examples: typing.Optional[int] = None
    dropout: typing.Optional[float] = None
    model_options: dict = dataclasses.field(default_factory=dict)


def model_options(task, config):
    """`config.model_options`, checked against the task kind's `model_options` (a `ConfigError` otherwise)."""
    options = dict(config.model_options)
    known = list(getattr(task, "model_options", ()))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"model_options: unknown key(s) {unknown} for task {task.name!r}; known keys: {known}")
    return options


def main(argv=None):
    config = parse_job_config(FinetuneConfig, argv, __doc__.splitlines()[0])
    for flag, value in (("--init", config.init), ("--output-dir", config.output_dir)):
        if not value:
            raise ConfigError(f"{flag} is required")
    try:
        config.check(config.task)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    task = tasks.get(config.task)
    options = model_options(task, config)
    train_file, validation_file = data_file(config.train_file, "--train-file"), data_file(
        config.validation_file, "--validation-file")

    # --- Strategy, precision, seeds ---
    strategy = prepare(config)

    # --- Pretrained encoder and its tokenizer (variables under the strategy); the saved model keeps it ---
    with strategy.scope():
        encoder, vocabulary, lowercase = load_pretrained(config.init)
    preprocessor = BertTextPreprocessor(vocabulary, lowercase=lowercase, sequence_length=config.max_seq_length)
    tokenizer = preprocessor.tokenizer

    # --- Data: training batches are global (the strategy splits them); dev labels must be the training ones ---
    train = task.read(train_file, config, tokenizer, batch_size=config.batch_size, training=True, seed=config.seed,
                      limit=config.max_train_examples)
    dev = task.read(validation_file, config, tokenizer, batch_size=config.eval_batch_size, training=False,
                    labels=train.labels, limit=config.max_eval_examples)
    check_not_empty(train.dataset, f"{train_file}: the training batches (fewer examples than --batch-size?)")
    print(f"[finetune] {config.task}: {train.size} training and {dev.size} dev examples"
          + (f", {len(train.labels)} labels {train.labels}" if train.labels else ""))
    steps = config.steps or max(1, math.ceil(config.epochs * train.size / config.batch_size))

    # --- Model and optimizer, under the strategy scope ---
    with strategy.scope():
        try:
            model = task.build_model(encoder, train.labels, config.dropout, **options)
        except ValueError as error:
            if not options:
                raise
            raise ConfigError(f"model_options {options}: {error}") from None
        model.compile(optimizer=build_optimizer(config, steps), jit_compile=config.use_jit_compile())

    def validate(model):
        return task.evaluate(dev, task.predict(model, dev), train.labels, config)[0]

    # --- Train: resumes from OUTPUT/checkpoints when they exist ---
    result = fit_resumable(
        model, train.dataset.repeat(), strategy=strategy, output_dir=config.output_dir, total_steps=steps,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, global_batch_size=config.batch_size, validate=validate,
        validate_every=config.eval_every, tokens_per_example=mean_tokens_per_example(train.dataset, 20),
        hparams={**{k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (bool, int, float, str))},
                 "steps": steps})
    if result["terminated"]:
        print(f"[finetune] stopped by SIGTERM at step {result['step']}; rerun the same command to resume")
        sys.exit(0)

    # --- Final validation, metrics.json, predictions, the text-in model ---
    metrics, predictions = task.evaluate(dev, task.predict(model, dev), train.labels, config)
    save_task_model("finetune", config, strategy, result, task, model, preprocessor, dev, metrics, predictions,
                    tokenizer)
    return metrics


if __name__ == "__main__":
    run(main)
