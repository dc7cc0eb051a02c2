"""Fine-tunes a BERT model on a task with `model.fit` (SST-2, ASSIN 2), validating on the dev set.

    python -m training.finetune --config training/configs/finetune_sst2.yaml --init DIR --output-dir DIR2

`--init` is any directory `keras_bert.load` reads (a pretraining output or a
converted checkpoint); its vocab.txt and casing drive tokenization. Data paths
default to the config's (relative to the repository root); `--train-file` and
`--validation-file` override them. Writes TensorBoard logs (train and validation
runs) to DIR2/logs, checkpoints to DIR2/checkpoints, `metrics.json` and
`predictions.tsv` for the dev set, and the fine-tuned model (with its class
names and tokenizer settings) to DIR2 via `keras_bert.save`.
"""

import argparse
import dataclasses
import json
import math
import os
import sys

import keras
import numpy as np

import keras_bert
from keras_bert import data as bert_data
from keras_bert.optimization import WarmupDecaySchedule, create_optimizer, set_mixed_precision
from keras_bert.tokenization import BertTokenizer
from keras_bert.trainer import (ConfigError, FinetuneConfig, add_config_flags, check_batch_size, check_not_empty,
                                create_strategy, fit_resumable, is_chief, load_config)
from keras_bert.trainer import metrics as task_metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What each task reads and trains: reader, model head, validation metrics.
TASKS = {
    "sst2": dict(kind="classification", train="../shared/data/sst2/train.tsv",
                 validation="../shared/data/sst2/dev.tsv"),
    "assin2_rte": dict(kind="classification", train="../shared/data/portuguese/assin2/assin2-train-only.xml",
                       validation="../shared/data/portuguese/assin2/assin2-dev.xml", assin2="entailment"),
    "assin2_sts": dict(kind="regression", train="../shared/data/portuguese/assin2/assin2-train-only.xml",
                       validation="../shared/data/portuguese/assin2/assin2-dev.xml", assin2="similarity"),
}
PLANNED_TASKS = ("squad", "harem")


def parse_config(argv=None):
    """The one config of this job: `--config FILE` plus flag overrides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of FinetuneConfig keys")
    add_config_flags(parser, FinetuneConfig)
    args = vars(parser.parse_args(argv))
    config = load_config(FinetuneConfig, args.pop("config"), args)
    if config.task in PLANNED_TASKS:
        raise ConfigError(f"task {config.task!r}: training.finetune does not train it yet (reader and metrics "
                          f"exist in keras_bert.data / keras_bert.trainer.metrics); known tasks: {sorted(TASKS)}")
    if config.task not in TASKS:
        raise ConfigError(f"unknown task {config.task!r}; known tasks: {sorted(TASKS)}")
    if not config.init or not config.output_dir:
        raise ConfigError("--init and --output-dir are required")
    return config


def _path(path):
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def read_examples(config, path, label_list=None, limit=None):
    """Reads a task's train or dev file into `TextExamples` (first `limit` rows when given)."""
    task = TASKS[config.task]
    if not os.path.exists(path):
        raise ConfigError(f"data file not found: {path} (set --train-file / --validation-file)")
    if "assin2" in task:
        examples = bert_data.classification.read_assin2(path, task=task["assin2"])
    else:
        examples = bert_data.classification.read_text_examples(path, label_list=label_list)
    if limit:
        examples = dataclasses.replace(examples, texts_a=examples.texts_a[:limit], labels=examples.labels[:limit],
                                       texts_b=None if examples.texts_b is None else examples.texts_b[:limit])
    return examples


def main(argv=None):
    config = parse_config(argv)
    task = TASKS[config.task]

    # --- Strategy, precision, seeds ---
    strategy = create_strategy(config.strategy)
    check_batch_size(strategy, config.batch_size)
    set_mixed_precision(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)

    # --- Tokenizer from the initial model, data ---
    settings = keras_bert.load_tokenizer_settings(config.init)
    if not settings.get("vocab_file"):
        raise ConfigError(f"{config.init} has no vocab.txt; fine-tuning needs the model's vocabulary")
    tokenizer = BertTokenizer(settings["vocab_file"], lowercase=settings["lowercase"])
    train_examples = read_examples(config, _path(config.train_file or task["train"]),
                                   limit=config.max_train_examples)
    dev_examples = read_examples(config, _path(config.validation_file or task["validation"]),
                                 label_list=train_examples.label_list, limit=config.max_eval_examples)
    train_data = bert_data.classification.text_examples_dataset(
        train_examples, tokenizer, sequence_length=config.max_seq_length, batch_size=config.batch_size,
        shuffle=True, seed=config.seed, pad_to_longest=True, drop_remainder=True).repeat()
    dev_data = bert_data.classification.text_examples_dataset(
        dev_examples, tokenizer, sequence_length=config.max_seq_length, batch_size=config.eval_batch_size,
        pad_to_longest=True)
    check_not_empty(train_data)
    check_not_empty(dev_data, "validation dataset")
    steps = config.steps or max(1, math.ceil(config.epochs * len(train_examples) / config.batch_size))

    # --- Model and optimizer, under the strategy scope ---
    with strategy.scope():
        encoder = keras_bert.load(config.init)
        encoder = getattr(encoder, "encoder", encoder)
        if task["kind"] == "classification":
            labels = list(train_examples.label_list)
            model = keras_bert.BertClassifier(encoder, num_classes=len(labels), labels=labels,
                                              dropout=config.dropout)
        else:
            model = keras_bert.BertRegressor(encoder, dropout=config.dropout)
        warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_proportion * steps)
        schedule = WarmupDecaySchedule(config.learning_rate, min(warmup, steps), steps, config.end_learning_rate,
                                       config.decay_power)
        optimizer = create_optimizer(config.optimizer, schedule, weight_decay=config.weight_decay,
                                     clipnorm=config.clipnorm, accumulation_steps=config.accumulation_steps,
                                     mixed_precision=config.mixed_precision)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile)

    # --- Validation: task metrics on the whole dev set ---
    def predict_dev(model):
        outputs = model.predict(dev_data.map(lambda x, y: x), verbose=0)
        return np.asarray(outputs)

    def validate(model):
        return dev_metrics(task["kind"], dev_examples.labels, predict_dev(model))

    # --- Train: resumes from OUTPUT/checkpoints when they exist ---
    result = fit_resumable(
        model, train_data, strategy=strategy, output_dir=config.output_dir, total_steps=steps,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, global_batch_size=config.batch_size, validate=validate,
        validate_every=config.eval_every, hparams={**{k: v for k, v in dataclasses.asdict(config).items()
                                                      if isinstance(v, (bool, int, float, str))}, "steps": steps})
    if result["terminated"]:
        print(f"[finetune] stopped by SIGTERM at step {result['step']}; rerun the same command to resume")
        sys.exit(0)

    # --- Final validation, metrics.json, predictions, saved model ---
    outputs = predict_dev(model)
    metrics = dev_metrics(task["kind"], dev_examples.labels, outputs)
    if result["logger"] is not None:
        result["logger"].write("validation", result["step"], metrics)
    if is_chief(strategy):
        write_outputs(config.output_dir, task["kind"], dev_examples, outputs, metrics, result["step"],
                      getattr(model, "labels", None))
        keras_bert.save(model, config.output_dir, vocab_file=settings["vocab_file"],
                        lowercase=settings["lowercase"])
    print(f"[finetune] {config.task} step {result['step']}: " + json.dumps(metrics))
    return metrics


def dev_metrics(kind, labels, outputs):
    """Validation metrics of a task: accuracy/F1 for classes, Pearson/Spearman for scores."""
    if kind == "classification":
        predictions = outputs.argmax(-1)
        metrics = {"accuracy": task_metrics.accuracy(labels, predictions)}
        metrics["f1"] = (task_metrics.binary_f1(labels, predictions) if outputs.shape[-1] == 2
                         else task_metrics.macro_f1(labels, predictions))
        return metrics
    return {"pearson": task_metrics.pearson(labels, outputs), "spearman": task_metrics.spearman(labels, outputs),
            "mse": float(np.mean((np.asarray(labels) - outputs) ** 2))}


def write_outputs(output_dir, kind, examples, outputs, metrics, step, labels):
    """Writes `metrics.json` and `predictions.tsv` (text, gold, predicted) for the dev set."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(dict(metrics, step=step), f, indent=2, sort_keys=True)
    with open(os.path.join(output_dir, "predictions.tsv"), "w", encoding="utf-8") as f:
        f.write("text\tlabel\tprediction\n")
        for index, text in enumerate(examples.texts_a):
            if kind == "classification":
                gold, predicted = labels[examples.labels[index]], labels[int(outputs[index].argmax())]
            else:
                gold, predicted = examples.labels[index], float(outputs[index])
            f.write(f"{text}\t{gold}\t{predicted}\n")


if __name__ == "__main__":
    main()
