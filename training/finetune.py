"""Fine-tunes a BERT model on a task with `model.fit` (SST-2, ASSIN 2, SQuAD v1.1, HAREM NER), validating on dev.

    python -m training.finetune --config training/configs/finetune_sst2.yaml --init DIR --output-dir DIR2

`--init` is any directory `keras_bert.load` reads (a pretraining output or a
converted checkpoint); its vocab.txt and casing drive tokenization. Data paths
default to the config's (relative to the repository root); `--train-file` and
`--validation-file` override them. Writes TensorBoard logs (train and validation
runs) to DIR2/logs, checkpoints to DIR2/checkpoints, `metrics.json` and a
predictions file for the dev set (`predictions.tsv`; `predictions.json` for
SQuAD), and the fine-tuned model (with its class or tag names and tokenizer
settings) to DIR2 via `keras_bert.save`.

Validation metrics: accuracy and F1 (SST-2, ASSIN 2 RTE), Pearson/Spearman
(ASSIN 2 STS), the official SQuAD v1.1 exact match and F1 (windows mapped back to
character answers), entity-level precision/recall/F1 (HAREM). The same evaluation
code serves `python -m training.evaluate`.
"""

import dataclasses
import json
import math
import os
import sys
import weakref

import keras
import numpy as np
import tensorflow as tf

import keras_bert
from keras_bert import data as bert_data
from keras_bert.optimization import WarmupDecaySchedule, create_optimizer, set_mixed_precision
from keras_bert.tokenization import BertTokenizer
from keras_bert.trainer import (ConfigError, FinetuneConfig, check_batch_size, check_not_empty, create_strategy,
                                fit_resumable, is_chief, parse_job_config)
from keras_bert.trainer import metrics as task_metrics
from keras_bert.trainer.tensorboard import mean_tokens_per_example

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What each task reads and trains: kind (model head, metrics), default data.
TASKS = {
    "sst2": dict(kind="classification", train="../shared/data/sst2/train.tsv",
                 validation="../shared/data/sst2/dev.tsv", config="finetune_sst2.yaml"),
    "assin2_rte": dict(kind="classification", train="../shared/data/portuguese/assin2/assin2-train-only.xml",
                       validation="../shared/data/portuguese/assin2/assin2-dev.xml", assin2="entailment",
                       config="finetune_assin2.yaml"),
    "assin2_sts": dict(kind="regression", train="../shared/data/portuguese/assin2/assin2-train-only.xml",
                       validation="../shared/data/portuguese/assin2/assin2-dev.xml", assin2="similarity",
                       config="finetune_assin2.yaml"),
    "squad": dict(kind="squad", train="../shared/data/squad/dev-v1.1.json",
                  validation="../shared/data/squad/dev-v1.1.json", config="finetune_squad.yaml"),
    "harem": dict(kind="ner", train="../shared/data/portuguese/harem_bertimbau/FirstHAREM-selective-train.json",
                  validation="../shared/data/portuguese/harem_bertimbau/MiniHAREM-selective.json",
                  config="finetune_harem.yaml"),
}
# Length buckets of training batches (text classification): short sentences are not padded to the longest
# of a random batch, let alone to max_seq_length. Two tokens wide where most sentences fall, so SST-2 batches
# carry ~3% padding (14.7% with 8-token buckets); bucket shapes cost no retracing (Keras' train function
# relaxes to dynamic shapes).
# Each pass over the data drops the last partial batch of every bucket, so a set needs BUCKET_MIN_BATCHES
# batches per bucket: smaller sets get every 2nd, 3rd, ... boundary, and a set too small for two buckets
# is batched at random, padded to each batch's longest (`length_buckets`).
BUCKETS = (*range(6, 33, 2), *range(36, 65, 4), 80, 96, 128, 160, 192, 256, 320, 384)
BUCKET_MIN_BATCHES = 20


def length_buckets(num_examples, batch_size, max_seq_length):
    """Bucket boundaries for `num_examples` training examples, or None when there are too few for buckets."""
    boundaries = [b for b in BUCKETS if b < max_seq_length]
    most = num_examples // (BUCKET_MIN_BATCHES * batch_size) - 1  # Boundaries: one bucket more than that.
    if most < 1 or not boundaries:
        return None
    stride = math.ceil(len(boundaries) / most)
    return boundaries[stride - 1::stride]


def parse_config(argv=None):
    """The one config of this job: `--config FILE` plus flag overrides."""
    config = parse_job_config(FinetuneConfig, argv, __doc__.splitlines()[0])
    check_task_config(config)
    if not config.init or not config.output_dir:
        raise ConfigError("--init and --output-dir are required")
    return config


def check_task_config(config):
    """Raises a `ConfigError` for an unknown task or settings the task cannot use."""
    if config.task not in TASKS:
        raise ConfigError(f"unknown task {config.task!r}; known tasks: {sorted(TASKS)}")
    if config.task == "squad" and config.doc_stride > config.max_seq_length - config.max_query_length - 3:
        raise ConfigError(f"doc_stride ({config.doc_stride}) must be <= max_seq_length - max_query_length - 3 "
                          f"({config.max_seq_length - config.max_query_length - 3}), or context would be skipped")
    if config.task == "harem" and config.harem_scheme not in ("selective", "total"):
        raise ConfigError(f"harem_scheme must be 'selective' or 'total', got {config.harem_scheme!r}")


def _path(path):
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def data_path(config, split):
    """The train or validation file of `config` (config/flag value, else the task's default)."""
    task = TASKS[config.task]
    path = _path((config.train_file if split == "train" else config.validation_file) or task[split])
    if not os.path.exists(path):
        raise ConfigError(f"data file not found: {path} (set --train-file / --validation-file)")
    return path


# --- Reading: one function per task kind, for training and for evaluation ---

@dataclasses.dataclass
class TaskData:
    """A task's examples as a dataset plus what evaluation needs to score predictions.

    Args:
        dataset: `tf.data.Dataset` of `(x, y)` batches (training: repeating, shuffled).
        size: int. Examples (classification), windows (SQuAD) or sequences (NER).
        reference: what `task_metrics` scores against: `TextExamples`, SQuAD windows, or `NerExamples`.
        label_list: list of str or None. Class or tag names.
    """

    dataset: object
    size: int
    reference: object
    label_list: object = None


def read_task_data(config, path, tokenizer, *, training, label_list=None):
    """Reads `path` for `config.task`: shuffled, repeating global batches when `training`, else in order."""
    kind = TASKS[config.task]["kind"]
    limit = config.max_train_examples if training else config.max_eval_examples
    batch_size = config.batch_size if training else config.eval_batch_size
    if kind in ("classification", "regression"):
        task = TASKS[config.task]
        if "assin2" in task:
            examples = bert_data.read_assin2(path, task=task["assin2"])
        else:
            examples = bert_data.read_text_examples(path, label_list=label_list)
        if limit:
            examples = dataclasses.replace(
                examples, texts_a=examples.texts_a[:limit], labels=examples.labels[:limit],
                texts_b=None if examples.texts_b is None else examples.texts_b[:limit])
        buckets = length_buckets(len(examples.labels), batch_size, config.max_seq_length) if training else None
        dataset = bert_data.text_examples_dataset(
            examples, tokenizer, sequence_length=config.max_seq_length, batch_size=batch_size, shuffle=training,
            seed=config.seed, pad_to_longest=True, bucket_boundaries=buckets, drop_remainder=training)
        return _finish(TaskData(dataset, len(examples.labels), examples, examples.label_list), training)
    if kind == "squad":
        features, windows, skipped = bert_data.read_squad(
            path, tokenizer, sequence_length=config.max_seq_length, doc_stride=config.doc_stride,
            max_query_length=config.max_query_length)
        if skipped:
            print(f"[finetune] {path}: skipped {dict(skipped)}")
        if limit:
            features = {k: v[:limit] for k, v in features.items()}
            windows = windows[:limit]
        dataset = bert_data.squad_dataset(features, batch_size, shuffle=training, seed=config.seed,
                                          drop_remainder=training).map(_trim_batch)
        return _finish(TaskData(dataset, len(windows), windows), training)
    # NER (HAREM): classes-<scheme>.txt next to the data, or the tags of the model being evaluated.
    if label_list is None:
        classes = os.path.join(os.path.dirname(path), f"classes-{config.harem_scheme}.txt")
        if not os.path.exists(classes):
            raise ConfigError(f"HAREM classes file not found: {classes}")
    else:
        classes = [tag[2:] for tag in label_list if tag.startswith("B-")]
    examples = bert_data.read_harem(path, tokenizer, classes=classes, sequence_length=config.max_seq_length)
    if label_list is not None and list(examples.label_list) != list(label_list):
        raise ConfigError(f"{path}: tags {examples.label_list} differ from the model's {label_list}")
    if limit:
        examples = dataclasses.replace(examples, token_ids=examples.token_ids[:limit],
                                       labels=examples.labels[:limit])
    dataset = bert_data.ner_examples_dataset(
        examples, sequence_length=config.max_seq_length, batch_size=batch_size, shuffle=training,
        seed=config.seed, pad_to_longest=True, pad_token_id=tokenizer.pad_token_id, drop_remainder=training)
    return _finish(TaskData(dataset, len(examples), examples, list(examples.label_list)), training)


def _finish(data, training):
    if training:
        check_not_empty(data.dataset)
        data.dataset = data.dataset.repeat()
    else:
        check_not_empty(data.dataset, "validation dataset")
    return data


def _trim_batch(x, y):
    """Cuts a batch of fixed-length windows to its longest window (positions all lie before it)."""
    length = tf.reduce_max(tf.reduce_sum(x["padding_mask"], axis=1))
    return {k: v[:, :length] for k, v in x.items()}, y


# --- Model ---

def build_model(kind, encoder, label_list, dropout):
    """The task head on `encoder`."""
    if kind == "classification":
        return keras_bert.BertClassifier(encoder, num_classes=len(label_list), labels=list(label_list),
                                         dropout=dropout)
    if kind == "regression":
        return keras_bert.BertRegressor(encoder, dropout=dropout)
    if kind == "squad":
        return keras_bert.BertQuestionAnswerer(encoder)
    return keras_bert.BertTokenClassifier(encoder, num_classes=len(label_list), labels=list(label_list),
                                          dropout=dropout)


# --- Evaluation (shared with training.evaluate) ---

_FORWARD = weakref.WeakKeyDictionary()


def _forward(model):
    """`model(x, training=False)` as one `tf.function` per model, called outside any strategy's replicas.

    Each process computes the whole batch itself, in order. (`predict_on_batch` under a
    MirroredStrategy runs the undistributed batch on every replica and concatenates the copies.)
    """
    if model not in _FORWARD:
        # A weak reference, so the cached function does not keep its own key (the model) alive.
        model_ref = weakref.ref(model)
        _FORWARD[model] = tf.function(lambda x: model_ref()(x, training=False), reduce_retracing=True)
    return _FORWARD[model]


def predict(model, data):
    """Outputs of `model` on `data`, in order: an array of class logits or scores, or a list of per-row
    arrays for SQuAD (`(start_logits, end_logits)` per window) and NER (`[length, tags]` per sequence)."""
    rows, dense = [], []
    forward = _forward(model)
    for x, _ in data.dataset:
        batch = keras.tree.map_structure(np.asarray, forward(x))
        if isinstance(batch, dict):  # SQuAD: windows trimmed to their batch's longest.
            rows += list(zip(batch["start_logits"], batch["end_logits"]))
        elif np.ndim(batch) == 3:  # NER: padding removed.
            lengths = np.asarray(x["padding_mask"]).sum(axis=1)
            rows += [row[:n] for row, n in zip(batch, lengths)]
        else:
            dense.append(batch)
    return np.concatenate(dense) if dense else rows


def evaluate(kind, data, outputs, label_list=None):
    """Validation metrics and the per-example predictions to write.

    Returns:
        tuple `(metrics, predictions)`; `predictions` is a dict (SQuAD: question id -> answer) or a list of rows.
    """
    if kind == "classification":
        labels = data.reference.labels
        predicted = outputs.argmax(-1)
        metrics = {"accuracy": task_metrics.accuracy(labels, predicted)}
        metrics["f1"] = (task_metrics.binary_f1(labels, predicted) if outputs.shape[-1] == 2
                         else task_metrics.macro_f1(labels, predicted))
        names = label_list or data.label_list
        rows = [(text, names[gold], names[int(p)]) for text, gold, p in zip(data.reference.texts_a, labels, predicted)]
        return metrics, rows
    if kind == "regression":
        labels, scores = np.asarray(data.reference.labels), np.asarray(outputs).reshape(-1)
        metrics = {"pearson": task_metrics.pearson(labels, scores), "spearman": task_metrics.spearman(labels, scores),
                   "mse": float(np.mean((labels - scores) ** 2))}
        return metrics, [(text, float(gold), float(p)) for text, gold, p in zip(data.reference.texts_a, labels, scores)]
    if kind == "squad":
        windows = data.reference
        answers = bert_data.best_answers([s for s, _ in outputs], [e for _, e in outputs], windows)
        truths = {w.question_id: w.answers for w in windows}
        return task_metrics.squad_scores(answers, truths), answers
    # NER: tags at the labelled positions (first piece of each word), entity-level scores.
    examples, names = data.reference, label_list or data.label_list
    true_sequences, predicted_sequences, rows = [], [], []
    for index, (gold, logits) in enumerate(zip(examples.labels, outputs)):
        gold = np.asarray(gold)
        positions = np.flatnonzero(gold != bert_data.IGNORE_LABEL)
        true_tags = [names[gold[p]] for p in positions]
        predicted_tags = [names[int(logits[p].argmax())] for p in positions]
        true_sequences.append(true_tags)
        predicted_sequences.append(predicted_tags)
        rows.append((index, positions, true_tags, predicted_tags))
    metrics = task_metrics.entity_scores(true_sequences, predicted_sequences)
    return {"entity_" + k: v for k, v in metrics.items()}, rows


def write_outputs(output_dir, kind, data, predictions, metrics, step, tokenizer=None):
    """Writes `metrics.json` and the predictions: `predictions.json` (SQuAD: id -> answer) or `predictions.tsv`."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(dict(metrics, step=step), f, indent=2, sort_keys=True)
    if kind == "squad":
        with open(os.path.join(output_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(predictions, f, indent=1, ensure_ascii=False, sort_keys=True)
        return
    with open(os.path.join(output_dir, "predictions.tsv"), "w", encoding="utf-8") as f:
        if kind != "ner":
            f.write("text\tlabel\tprediction\n")
            for text, gold, predicted in predictions:
                f.write(f"{text}\t{gold}\t{predicted}\n")
            return
        # NER: one word a line (its pieces joined), a blank line between sequences (CoNLL-like).
        vocabulary = tokenizer.get_vocabulary() if tokenizer is not None else None
        f.write("word\tlabel\tprediction\n")
        for index, positions, true_tags, predicted_tags in predictions:
            ids = data.reference.token_ids[index]
            for k, (p, gold, predicted) in enumerate(zip(positions, true_tags, predicted_tags)):
                end = positions[k + 1] if k + 1 < len(positions) else len(ids) - 1
                word = "".join(vocabulary[i].removeprefix("##") for i in ids[p:end]) if vocabulary else str(ids[p])
                f.write(f"{word}\t{gold}\t{predicted}\n")
            f.write("\n")


# --- The job ---

def main(argv=None):
    config = parse_config(argv)
    kind = TASKS[config.task]["kind"]

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
    train = read_task_data(config, data_path(config, "train"), tokenizer, training=True)
    dev = read_task_data(config, data_path(config, "validation"), tokenizer, training=False,
                         label_list=train.label_list)
    steps = config.steps or max(1, math.ceil(config.epochs * train.size / config.batch_size))

    # --- Model and optimizer, under the strategy scope ---
    with strategy.scope():
        encoder = keras_bert.load(config.init)
        encoder = getattr(encoder, "encoder", encoder)
        model = build_model(kind, encoder, train.label_list, config.dropout)
        warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_proportion * steps)
        schedule = WarmupDecaySchedule(config.learning_rate, min(warmup, steps), steps, config.end_learning_rate,
                                       config.decay_power)
        optimizer = create_optimizer(config.optimizer, schedule, weight_decay=config.weight_decay,
                                     clipnorm=config.clipnorm, accumulation_steps=config.accumulation_steps,
                                     mixed_precision=config.mixed_precision)
        model.compile(optimizer=optimizer, jit_compile=config.jit_compile)

    def validate(model):
        return evaluate(kind, dev, predict(model, dev), train.label_list)[0]

    # --- Train: resumes from OUTPUT/checkpoints when they exist ---
    result = fit_resumable(
        model, train.dataset, strategy=strategy, output_dir=config.output_dir, total_steps=steps,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, global_batch_size=config.batch_size, validate=validate,
        validate_every=config.eval_every, tokens_per_example=mean_tokens_per_example(train.dataset, 20),
        hparams={**{k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (bool, int, float, str))},
                 "steps": steps})
    if result["terminated"]:
        print(f"[finetune] stopped by SIGTERM at step {result['step']}; rerun the same command to resume")
        sys.exit(0)

    # --- Final validation, metrics.json, predictions, saved model ---
    metrics, predictions = evaluate(kind, dev, predict(model, dev), train.label_list)
    if result["logger"] is not None:
        result["logger"].write("validation", result["step"], metrics)
    if is_chief(strategy):
        write_outputs(config.output_dir, kind, dev, predictions, metrics, result["step"], tokenizer)
        keras_bert.save(model, config.output_dir, vocab_file=settings["vocab_file"],
                        lowercase=settings["lowercase"])
    print(f"[finetune] {config.task} step {result['step']}: " + json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
