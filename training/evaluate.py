"""Evaluates a fine-tuned model on a dev (or any) file: `metrics.json` and the predictions.

    python -m training.evaluate --model DIR --data FILE --output-dir OUT [--config RECIPE.yaml] [--flags]

`--model` is a directory written by `training.finetune` (or `keras_bert.save`); its task, labels,
vocabulary and casing are the model's own. The data keys (format, columns, sequence settings) come
from `--config` (e.g. the recipe the model was trained with) and flags override them; `--data`
defaults to the config's `validation_file`. The metrics and predictions are the task's own, as in
`training.finetune`.
"""

import dataclasses
import json
import typing

import keras_bert
from keras_bert import tasks
from keras_bert.trainer import ConfigError, data_file, parse_job_config, run


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(tasks.DataOptions):
    """The evaluation job's config: the data keys and these.

    Args:
        model: str or None. The fine-tuned model directory.
        data: str or None. The file to evaluate; None: `validation_file`.
        validation_file: str or None. The recipe's dev file (the default of `data`).
        output_dir: str or None. Where `metrics.json` and the predictions go.
    """

    model: typing.Optional[str] = None
    data: typing.Optional[str] = None
    validation_file: typing.Optional[str] = None
    output_dir: typing.Optional[str] = None


def main(argv=None):
    config = parse_job_config(EvaluateConfig, argv, __doc__.splitlines()[0], ignore_unknown=True)
    for flag, value in (("--model", config.model), ("--output-dir", config.output_dir)):
        if not value:
            raise ConfigError(f"{flag} is required")
    path = data_file(config.data or config.validation_file, "--data")

    # --- The model, its task and tokenizer ---
    model = keras_bert.load(config.model)
    task = tasks.for_model(model)
    labels = getattr(model, "labels", None)
    if task.name in ("classification", "token_classification") and not labels:
        raise ConfigError(f"{config.model}: the model has no class/tag names (labels); save it with labels")
    preprocessor = getattr(model, "preprocessor", None)  # Text-in models carry their tokenizer.
    tokenizer = preprocessor.tokenizer if preprocessor is not None else keras_bert.load_tokenizer(config.model)

    # --- Data, predictions, metrics ---
    data = task.read(path, config, tokenizer, batch_size=config.eval_batch_size, training=False, labels=labels,
                     limit=config.max_eval_examples)
    metrics, predictions = task.evaluate(data, task.predict(model, data), labels, config)
    tasks.write_metrics(config.output_dir, metrics)
    task.write_predictions(config.output_dir, data, predictions, tokenizer)
    print(f"[evaluate] {task.name} on {path}: " + json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    run(main)
