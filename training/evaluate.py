"""Evaluates a fine-tuned model on a task's dev (or any) file: metrics JSON and predictions.

    python -m training.evaluate --model DIR --task {sst2,assin2_rte,assin2_sts,squad,harem} \
        [--data FILE] --output-dir OUT [--config FILE] [--max-seq-length N] [--eval-batch-size N]

`--model` is a directory written by `training.finetune` (or `keras_bert.save`);
its vocab.txt, casing and class/tag names are used. Sequence settings
(max_seq_length, doc_stride, ...) come from `--config`, by default the task's
fine-tuning config in training/configs/, and flags override them; `--data`
defaults to the config's validation file. Writes `OUT/metrics.json` and
`OUT/predictions.tsv` (`predictions.json` for SQuAD: question id -> answer),
with the very evaluation code of `training.finetune`.
"""

import argparse
import json
import os

import keras_bert
from keras_bert.tokenization import BertTokenizer
from keras_bert.trainer import ConfigError, FinetuneConfig, load_config
from training import finetune


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="fine-tuned model directory (keras_bert.load reads it)")
    parser.add_argument("--task", required=True, choices=sorted(finetune.TASKS))
    parser.add_argument("--data", help="file to evaluate (default: the config's validation file)")
    parser.add_argument("--output-dir", required=True, help="where metrics.json and predictions go")
    parser.add_argument("--config", help="FinetuneConfig YAML (default: the task's training/configs file)")
    for flag, kind in (("--max-seq-length", int), ("--eval-batch-size", int), ("--max-eval-examples", int),
                       ("--doc-stride", int), ("--max-query-length", int)):
        parser.add_argument(flag, type=kind)
    args = parser.parse_args(argv)
    path = args.config or os.path.join(finetune.REPO_ROOT, "training", "configs", finetune.TASKS[args.task]["config"])
    overrides = {"task": args.task, "validation_file": args.data, "max_seq_length": args.max_seq_length,
                 "eval_batch_size": args.eval_batch_size, "max_eval_examples": args.max_eval_examples,
                 "doc_stride": args.doc_stride, "max_query_length": args.max_query_length}
    config = load_config(FinetuneConfig, path, overrides)
    finetune.check_task_config(config)
    return args, config


def main(argv=None):
    args, config = parse_args(argv)
    kind = finetune.TASKS[config.task]["kind"]
    settings = keras_bert.load_tokenizer_settings(args.model)
    if not settings.get("vocab_file"):
        raise ConfigError(f"{args.model} has no vocab.txt")
    tokenizer = BertTokenizer(settings["vocab_file"], lowercase=settings["lowercase"])
    model = keras_bert.load(args.model)
    expected = {"classification": "BertClassifier", "regression": "BertRegressor", "squad": "BertQuestionAnswerer",
                "ner": "BertTokenClassifier"}[kind]
    if type(model).__name__ != expected:
        raise ConfigError(f"task {config.task!r} needs a {expected}; {args.model} holds a {type(model).__name__}")
    labels = getattr(model, "labels", None)
    if kind in ("classification", "ner") and not labels:
        raise ConfigError(f"{args.model}: the model has no class/tag names (labels); save it with labels")
    data = finetune.read_task_data(config, finetune.data_path(config, "validation"), tokenizer, training=False,
                                   label_list=labels)
    metrics, predictions = finetune.evaluate(kind, data, finetune.predict(model, data), labels)
    finetune.write_outputs(args.output_dir, kind, data, predictions, metrics, None, tokenizer)
    print(f"[evaluate] {config.task} on {finetune.data_path(config, 'validation')}: " + json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
