"""Distils a fine-tuned task model (the teacher) into a smaller, faster student with `model.fit`.

    python -m training.distill --config training/configs/distill_sst2.yaml --teacher DIR --output-dir DIR2
    python -m training.distill --teacher DIR --task regression --train-file train.csv --validation-file dev.csv \
        --student-layers 0 2 4 --output-dir DIR2

The data keys and flags are those of `training.finetune` (`--train-file`, `--validation-file`, `--steps`, ...).
The teacher is a `training.finetune` (or `keras_bert.save`) classification or regression directory; the student
is one of: a subset of its blocks (`student_layers: [0, 2, 4]`, every weight copied, or the strongest
`student_intermediate_size` feed-forward neurons and `student_num_heads` attention heads of each), a pretrained encoder
directory (`init`), or a `BertConfig` from scratch (`student_preset` and/or `student_config` overrides of the
teacher's config). The transfer set is the labelled training file, plus the lines of `unlabeled_files` and
`augment_copies` word-dropout/swap copies of each training text, all labelled by the teacher; the teacher's
outputs are computed once per example and cached in DIR2/teacher_outputs.npz. The loss is the soft-target KL
at `temperature` (x T^2), the hard-label loss on the labelled examples and, with `hidden_weight`, the
hidden-state MSE (through learned projections when the widths differ) and, with `attention_weight`, the KL of
the mapped blocks' attention distributions. With `mixed_precision: mixed_bfloat16` (the SST-2 recipe: AMX or
AVX512-BF16 CPUs) the teacher runs under the same policy, so its cached outputs come from bfloat16 matmuls; the
saved student holds no dtype and loads (and exports) at float32 unless asked otherwise. Writes what
`training.finetune` writes:
TensorBoard logs (each loss term, the validation metric, the student's and teacher's sizes and speed),
checkpoints (resumable), `metrics.json`, the dev predictions and the text-in student model (`keras_bert.load`).
"""

import dataclasses
import hashlib
import math
import os
import random
import sys
import time
import typing

import numpy as np
import tensorflow as tf

import keras_bert
from keras_bert import tasks
from keras_bert.data import DataError, SkipCounter, TextExamples, text_examples_dataset
from keras_bert.models.distiller import (DISTILLABLE, BertDistiller, check_layer_map, encoder_flops,
                                         student_from_layers, student_on_encoder)
from keras_bert.tasks.classification import first, length_buckets, read_examples
from keras_bert.tasks.preprocessing import BertTextPreprocessor, load_pretrained
from keras_bert.trainer import (ConfigError, build_optimizer, check_not_empty, data_file, fit_resumable,
                                parse_job_config, prepare, run, save_task_model)
from keras_bert.trainer.tensorboard import mean_tokens_per_example
from training.finetune import FinetuneConfig

CACHE_FILE = "teacher_outputs.npz"


@dataclasses.dataclass(frozen=True)
class DistillConfig(FinetuneConfig):
    """The distillation job's config: the fine-tuning keys (`init` is the student's pretrained encoder) and these.

    Args:
        teacher: str or None. The fine-tuned teacher's model directory.
        student_layers: list or None. Teacher blocks the student keeps, e.g. [0, 2, 4].
        student_intermediate_size: int or None. With `student_layers`: feed-forward neurons each kept block
            keeps (those with the largest input x output weight norms; default all).
        student_num_heads: int or None. With `student_layers`: attention heads each kept block keeps (those
            with the largest value x output weight norms; default all).
        student_preset: str or None. A `BertConfig` preset for a student from scratch.
        student_config: dict or None. `BertConfig` overrides (of the preset, else of the teacher's config) for a
            student from scratch, e.g. {num_layers: 2, hidden_size: 256, intermediate_size: 1024}.
        temperature: float. Softmax temperature of the soft targets.
        soft_weight: float. Weight of the soft-target loss.
        hard_weight: float. Weight of the hard-label loss (labelled examples only).
        hidden_weight: float. Weight of the hidden-state MSE (0: off; it runs the teacher every step).
        attention_weight: float. Weight of the attention-distribution KL (0: off; runs the teacher every step;
            the student needs the teacher's number of heads).
        layer_map: list or None. The teacher block each student block's hidden state learns; None: evenly spaced.
        unlabeled_files: list or None. Plain-text files, one text a line, labelled by the teacher.
        max_unlabeled_examples: int or None. Use only the first N unlabeled lines (all files together).
        augment_copies: int. Augmented copies of each training text.
        augmentation: str. How a copy is made: "dropout_swap" (random word dropout and one swap of neighbours) or
            "neighbours" (whole single-piece words replaced by their nearest neighbours in the teacher's
            word-embedding matrix, TinyBERT-style without an MLM head; `NeighbourAugmenter`).
        augment_word_dropout: float. Share of the words a "dropout_swap" copy drops.
        augment_candidates: int. Nearest neighbours (cosine similarity) a "neighbours" copy draws a word from.
        augment_replace_prob: float. Probability that a "neighbours" copy replaces a replaceable word.
    """

    choices = {**FinetuneConfig.choices, "augmentation": ("dropout_swap", "neighbours")}

    teacher: typing.Optional[str] = None
    student_layers: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    student_intermediate_size: typing.Optional[int] = None
    student_num_heads: typing.Optional[int] = None
    student_preset: typing.Optional[str] = None
    student_config: typing.Optional[dict] = None
    temperature: float = 2.0
    soft_weight: float = 1.0
    hard_weight: float = 0.5
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    layer_map: typing.Optional[list] = dataclasses.field(default=None, metadata={"comma_separated": True})
    unlabeled_files: typing.Optional[list] = None
    max_unlabeled_examples: typing.Optional[int] = None
    augment_copies: int = 0
    augmentation: str = "dropout_swap"
    augment_word_dropout: float = 0.1
    augment_candidates: int = 8
    augment_replace_prob: float = 0.3


def _ints(values, key):
    if values is None:
        return None
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a list of block numbers, got {values!r}") from None


def _vocabulary(vocabulary):
    """A list of tokens from a vocab.txt path or a token list."""
    if isinstance(vocabulary, (list, tuple)):
        return list(vocabulary)
    with open(vocabulary, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


# --- The student ---

def build_student(config, teacher, teacher_vocabulary):
    """The student task model from the config's student keys (see the module docstring)."""
    layers = _ints(config.student_layers, "student_layers")
    from_config = config.student_preset is not None or config.student_config is not None
    chosen = [k for k, v in (("student_layers", layers), ("init", config.init), ("student_config", from_config))
              if v]
    if len(chosen) != 1:
        raise ConfigError("set one of student_layers, init (a pretrained encoder) or student_preset/student_config "
                          f"(from scratch) for the student; got {chosen or 'none'}")
    inter, heads = config.student_intermediate_size, config.student_num_heads
    for key, value in (("student_intermediate_size", inter), ("student_num_heads", heads)):
        if value is not None and not layers:
            raise ConfigError(f"{key}: prunes the blocks of student_layers, which is not set")
    if layers:
        origin = ("teacher blocks " + ",".join(map(str, layers)) + (f", {inter} feed-forward neurons" if inter else "")
                  + (f", {heads} heads" if heads else ""))
        try:
            return student_from_layers(teacher, layers, inter, heads), origin
        except ValueError as error:
            # The library names the argument first; map it back to its key.
            key = {"intermediate_size": "student_intermediate_size", "num_heads": "student_num_heads"}.get(
                str(error).split(" ")[0], "student_layers")
            raise ConfigError(f"{key}: {error}") from None
    if config.init:
        encoder, vocabulary, _ = load_pretrained(config.init)
        if _vocabulary(vocabulary) != teacher_vocabulary:
            raise ConfigError(f"init: {config.init} has another vocabulary than the teacher's; the student reads "
                              f"the teacher's word pieces")
        return student_on_encoder(teacher, encoder), f"pretrained encoder {config.init}"
    base = teacher.encoder.config
    try:
        if config.student_preset:
            base = keras_bert.BertConfig.from_preset(config.student_preset)
        student_config = base.replace(**dict(config.student_config or {}))
        student_config = student_config.replace(vocab_size=teacher.encoder.config.vocab_size,
                                                max_position_embeddings=max(student_config.max_position_embeddings,
                                                                            config.max_seq_length))
    except (TypeError, ValueError) as error:
        key = "student_preset" if config.student_preset and not config.student_config else "student_config"
        raise ConfigError(f"{key}: {error}") from None
    return student_on_encoder(teacher, keras_bert.BertEncoder(student_config)), "from scratch"


# --- The transfer set ---

def read_unlabeled(paths, limit=None):
    """Non-empty lines of plain-text files (one text a line), at most `limit` in all."""
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = " ".join(line.split())
                if line:
                    texts.append(line)
                if limit and len(texts) >= limit:
                    return texts
    return texts


def augment(text, rng, word_dropout):
    """A copy of `text` with each word dropped with probability `word_dropout` and two neighbours swapped."""
    words = text.split()
    kept = [w for w in words if rng.random() >= word_dropout] or words[:1]
    if len(kept) > 2:
        i = rng.randrange(len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)


def _whole_word(token):
    """A vocabulary entry that is a whole word: letters only (no "##" continuation, [special] or punctuation)."""
    return token.isalpha()


class NeighbourAugmenter:
    """Replaces whole single-piece words by their nearest neighbours in a word-embedding matrix (TinyBERT-style).

    A (whitespace-separated) word is replaceable when the tokenizer makes exactly one piece of it and that piece
    is a whole word of the vocabulary (letters only: no "##" continuation, special token or punctuation). Its
    candidates are the `candidates` other whole-word entries whose rows of `embeddings` are closest to its row by
    cosine similarity, nearest first. A copy replaces each replaceable word, with probability `replace_prob`, by
    a candidate drawn uniformly; other words are kept. No MLM head is needed, only the teacher's embeddings.

    Args:
        embeddings: float array `[vocab_size, hidden]` (the teacher's word embeddings).
        tokenizer: `BertTokenizer` of that vocabulary.
        candidates: int. Neighbours per word.
        replace_prob: float. Probability of replacing each replaceable word.

    Example:
    >>> import random
    >>> from keras_bert.tokenization.tokenizer import BertTokenizer
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "film", "movie", "."]
    >>> rows = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 1]])
    >>> augmenter = NeighbourAugmenter(rows, BertTokenizer(vocab), candidates=1, replace_prob=1.0)
    >>> augmenter = augmenter.fit(["a good film ."])
    >>> augmenter("a good film .", random.Random(0))
    'a great movie .'
    """

    def __init__(self, embeddings, tokenizer, candidates=8, replace_prob=0.3):
        if candidates < 1:
            raise ValueError(f"candidates: must be >= 1, got {candidates!r}")
        if not 0.0 <= replace_prob <= 1.0:
            raise ValueError(f"replace_prob: must be in [0, 1], got {replace_prob!r}")
        self.embeddings = np.asarray(embeddings, np.float32)
        self.tokenizer = tokenizer
        self.vocabulary = list(tokenizer.get_vocabulary())
        if self.embeddings.shape[0] != len(self.vocabulary):
            raise ValueError(f"embeddings have {self.embeddings.shape[0]} rows for a vocabulary of "
                             f"{len(self.vocabulary)} tokens")
        self.candidates = int(candidates)
        self.replace_prob = float(replace_prob)
        self.neighbours = {}  # word -> its candidate words, nearest first

    def fit(self, texts, chunk=2048):
        """Finds the candidates of every replaceable word of `texts` (an iterable of strings); returns self."""
        words = sorted({w for text in texts for w in text.split()} - set(self.neighbours))
        if not words:
            return self
        pieces = self.tokenizer(tf.constant(words))
        lengths, ids = pieces.row_lengths().numpy(), pieces.flat_values.numpy()
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pool = np.array([i for i, token in enumerate(self.vocabulary) if _whole_word(token)])
        position = {int(token_id): k for k, token_id in enumerate(pool)}
        single = [(w, position[int(ids[s])]) for w, n, s in zip(words, lengths, starts)
                  if n == 1 and int(ids[s]) in position]
        if not single or len(pool) < 2:
            return self
        rows = self.embeddings[pool]
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        k = min(self.candidates, len(pool) - 1)
        for begin in range(0, len(single), chunk):
            part = single[begin:begin + chunk]
            query = np.array([p for _, p in part])
            similarity = rows[query] @ rows.T
            similarity[np.arange(len(part)), query] = -np.inf  # Not the word itself.
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
            for (word, _), best in zip(part, np.take_along_axis(top, order, axis=1)):
                self.neighbours[word] = [self.vocabulary[pool[j]] for j in best]
        return self

    def __call__(self, text, rng):
        """A copy of `text` (its words joined by single spaces); `rng` is a `random.Random`."""
        out = []
        for word in text.split():
            candidates = self.neighbours.get(word)
            if candidates and rng.random() < self.replace_prob:
                word = rng.choice(candidates)
            out.append(word)
        return " ".join(out)


def transfer_examples(train, config, unlabeled, augmenter=None):
    """The transfer set's texts (`(texts_a, texts_b or None)`): the training texts, their `augment_copies`
    copies (by `augmenter`, a fitted `NeighbourAugmenter`, when given; else `augment`'s dropout and swap) and the
    unlabeled lines."""
    texts_a, texts_b = list(train.texts_a), None if train.texts_b is None else list(train.texts_b)
    rng = random.Random(config.seed)

    def copy(text):
        return augmenter(text, rng) if augmenter is not None else augment(text, rng, config.augment_word_dropout)

    for _ in range(config.augment_copies):
        texts_a += [copy(t) for t in train.texts_a]
        if texts_b is not None:
            texts_b += [copy(t) for t in train.texts_b]
    if unlabeled:
        if texts_b is not None:
            raise ConfigError("unlabeled_files: their lines are single texts, but the training data are text pairs")
        texts_a += unlabeled
    return texts_a, texts_b


def teacher_outputs(teacher, task, tokenizer, texts, config, cache_path, fingerprint):
    """The teacher's outputs (logits or scores) for every transfer text, read from `cache_path` when it matches."""
    if os.path.exists(cache_path):
        cached = np.load(cache_path)
        if str(cached["fingerprint"]) == fingerprint:
            print(f"[distill] teacher outputs from {cache_path}")
            return cached["outputs"]
    texts_a, texts_b = texts
    order = np.argsort([len(t) for t in texts_a], kind="stable")  # Similar lengths batch with little padding.
    examples = TextExamples([texts_a[i] for i in order], None if texts_b is None else [texts_b[i] for i in order],
                            list(range(len(order))), ["index"], SkipCounter())
    dataset = text_examples_dataset(examples, tokenizer, sequence_length=config.max_seq_length,
                                    batch_size=config.eval_batch_size, pad_to_longest=True)
    start = time.perf_counter()
    sorted_outputs = task.predict(teacher, tasks.TaskData(dataset, len(order), examples))
    print(f"[distill] teacher outputs for {len(order)} texts in {time.perf_counter() - start:.1f} s")
    outputs = np.empty_like(sorted_outputs)
    outputs[order] = sorted_outputs
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    with open(cache_path + ".tmp", "wb") as f:  # Then renamed: a cache file is never half written.
        np.savez(f, outputs=outputs, fingerprint=np.asarray(fingerprint))
    os.replace(cache_path + ".tmp", cache_path)
    return outputs


def _fingerprint(teacher_dir, texts, max_seq_length, dtype_policy):
    digest = hashlib.sha256(f"{os.path.abspath(teacher_dir)}\n{max_seq_length}\n{dtype_policy}\n".encode())
    for part in texts:
        if part is not None:
            digest.update("\x00".join(part).encode("utf-8"))
    return digest.hexdigest()


def distillation_dataset(texts, outputs, hard_labels, labelled, tokenizer, config):
    """Shuffled, length-bucketed training batches `(x, {"teacher_logits", "labels", "labelled"})`.

    Each example's label is its index in the transfer set; the map looks its cached teacher output and gold
    label up, so every pass reuses the teacher outputs.
    """
    texts_a, texts_b = texts
    examples = TextExamples(texts_a, texts_b, list(range(len(texts_a))), ["index"], SkipCounter())
    buckets = length_buckets(len(texts_a), config.batch_size, config.max_seq_length)
    dataset = text_examples_dataset(examples, tokenizer, sequence_length=config.max_seq_length,
                                    batch_size=config.batch_size, shuffle=True, seed=config.seed,
                                    pad_to_longest=True, bucket_boundaries=buckets, drop_remainder=True)
    table = {"teacher_logits": tf.constant(outputs, tf.float32), "labels": tf.constant(hard_labels),
             "labelled": tf.constant(labelled, tf.float32)}
    return dataset.map(lambda x, index: (x, {k: tf.gather(v, index) for k, v in table.items()}))


def examples_per_second(task, model, data):
    """Sentences per second of `task.predict(model, data)` (after one warm-up batch), and the outputs."""
    for x, _ in data.dataset.take(1):
        tasks.forward(model)(x)
    start = time.perf_counter()
    outputs = task.predict(model, data)
    return data.size / (time.perf_counter() - start), outputs


def neighbour_augmenter(teacher, tokenizer, train_examples, config):
    """The `NeighbourAugmenter` of the config's keys on the teacher's word embeddings, fitted on the training texts."""
    import keras

    embeddings = keras.ops.convert_to_numpy(teacher.encoder.embeddings.token_embedding.embeddings)
    try:
        augmenter = NeighbourAugmenter(embeddings, tokenizer, config.augment_candidates, config.augment_replace_prob)
    except ValueError as error:  # Its range errors start with the argument's name; the key adds "augment_".
        raise ConfigError(f"augment_{error}") from None
    started = time.perf_counter()
    texts = list(train_examples.texts_a) + list(train_examples.texts_b or [])
    augmenter.fit(texts)
    words = len({w for text in texts for w in text.split()})
    print(f"[distill] neighbour augmentation: {len(augmenter.neighbours)} of {words} distinct training words "
          f"replaceable, {config.augment_candidates} candidates each, p = {config.augment_replace_prob} "
          f"({time.perf_counter() - started:.1f} s)")
    return augmenter


def main(argv=None):
    config = parse_job_config(DistillConfig, argv, __doc__.splitlines()[0])
    for flag, value in (("--teacher", config.teacher), ("--output-dir", config.output_dir)):
        if not value:
            raise ConfigError(f"{flag} is required")
    try:
        config.check(config.task)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    train_file, validation_file = data_file(config.train_file, "--train-file"), data_file(
        config.validation_file, "--validation-file")
    unlabeled_files = [data_file(p, "--unlabeled-files") for p in config.unlabeled_files or []]
    strategy = prepare(config)

    # --- The teacher: a task model of the config's kind; its tokenizer is the student's ---
    with strategy.scope():
        try:
            teacher = keras_bert.load(config.teacher)
        except (OSError, ValueError) as error:
            raise ConfigError(f"--teacher: cannot load {config.teacher} ({error})") from None
    kind = getattr(teacher, "task_kind", None)
    if kind not in DISTILLABLE:
        raise ConfigError(f"--teacher: {config.teacher} is a {kind or type(teacher).__name__} model; distillation "
                          f"takes a {' or '.join(DISTILLABLE)} teacher")
    if kind != config.task:
        raise ConfigError(f"task: the teacher {config.teacher} is a {kind} model, but task is {config.task!r}")
    task = tasks.get(kind)
    preprocessor = getattr(teacher, "preprocessor", None)
    tokenizer = preprocessor.tokenizer if preprocessor is not None else keras_bert.load_tokenizer(config.teacher)
    vocabulary = list(tokenizer.get_vocabulary())
    preprocessor = BertTextPreprocessor(vocabulary, lowercase=tokenizer.lowercase,
                                        sequence_length=config.max_seq_length)

    # --- Data: the teacher's labels must be the data's ---
    labels = getattr(teacher, "labels", None)
    train_examples = first(read_examples(train_file, config, regression=task.regression,
                                         labels=None if task.regression else config.labels), config.max_train_examples)
    if not len(train_examples):
        raise DataError(f"{train_file}: no examples")
    if not task.regression and list(train_examples.label_list) != list(labels or []):
        raise ConfigError(f"labels: the teacher's labels {labels} differ from the training data's "
                          f"{train_examples.label_list} ({train_file})")
    dev = task.read(validation_file, config, tokenizer, batch_size=config.eval_batch_size, training=False,
                    labels=labels, limit=config.max_eval_examples)

    # --- Student and distiller, under the strategy scope (bad student keys fail before the teacher runs) ---
    with strategy.scope():
        student, origin = build_student(config, teacher, vocabulary)
        s, t = student.encoder.config, teacher.encoder.config
        if config.hidden_weight and s.hidden_size > t.hidden_size:
            key = "init" if config.init else ("student_config" if config.student_config else "student_preset")
            raise ConfigError(f"{key}: the student's hidden_size {s.hidden_size} is wider than the teacher's "
                              f"{t.hidden_size}; the hidden_weight projection maps a narrower student to the "
                              f"teacher's width")
        if config.attention_weight and s.num_heads != t.num_heads:
            key = ("student_num_heads" if config.student_num_heads else "init" if config.init
                   else "student_config" if config.student_config else "student_preset")
            raise ConfigError(f"{key}: the student's num_heads {s.num_heads} differs from the teacher's "
                              f"{t.num_heads}; attention_weight compares attention distributions head by head")
        layer_map = _ints(config.layer_map, "layer_map")
        if layer_map is not None:
            try:
                check_layer_map(layer_map, s.num_layers, t.num_layers)
            except ValueError as error:
                raise ConfigError(f"layer_map: {error}") from None
        distiller = BertDistiller(student, teacher if config.hidden_weight or config.attention_weight else None,
                                  temperature=config.temperature, soft_weight=config.soft_weight,
                                  hard_weight=config.hard_weight, hidden_weight=config.hidden_weight,
                                  layer_map=layer_map, attention_weight=config.attention_weight)

    # --- The transfer set and the teacher's outputs (once per example, cached) ---
    unlabeled = read_unlabeled(unlabeled_files, config.max_unlabeled_examples)
    augmenter = None
    if config.augment_copies and config.augmentation == "neighbours":
        augmenter = neighbour_augmenter(teacher, tokenizer, train_examples, config)
    texts = transfer_examples(train_examples, config, unlabeled, augmenter)
    size, gold = len(texts[0]), len(train_examples)
    outputs = teacher_outputs(teacher, task, tokenizer, texts, config,
                              os.path.join(config.output_dir, CACHE_FILE),
                              _fingerprint(config.teacher, texts, config.max_seq_length,
                                           teacher.dtype_policy.name))
    hard = np.zeros(size, np.float32 if task.regression else np.int32) - (0 if task.regression else 1)
    hard[:gold] = train_examples.labels
    labelled = (np.arange(size) < gold).astype(np.float32)
    train = distillation_dataset(texts, outputs, hard, labelled, tokenizer, config)
    check_not_empty(train, f"{train_file}: the training batches (fewer examples than --batch-size?)")
    print(f"[distill] {kind}: {size} transfer examples ({gold} labelled, {size - gold - len(unlabeled)} augmented, "
          f"{len(unlabeled)} unlabeled), {dev.size} dev examples")
    steps = config.steps or max(1, math.ceil(config.epochs * size / config.batch_size))

    with strategy.scope():
        distiller.compile(optimizer=build_optimizer(config, steps), jit_compile=config.use_jit_compile())
    sizes = {"teacher_parameters": teacher.encoder.count_params(), "student_parameters": student.encoder.count_params(),
             "student_teacher_flops": encoder_flops(s, 32) / encoder_flops(t, 32)}
    print(f"[distill] student ({origin}): {s.num_layers} blocks x {s.hidden_size}, "
          f"{sizes['student_parameters']:,} encoder parameters vs the teacher's {sizes['teacher_parameters']:,} "
          f"({t.num_layers} x {t.hidden_size}); {sizes['student_teacher_flops']:.3f} of its encoder FLOPs")

    def validate(_):
        return task.evaluate(dev, task.predict(student, dev), labels, config)[0]

    # --- Train: resumes from OUTPUT/checkpoints when they exist ---
    result = fit_resumable(
        distiller, train.repeat(), strategy=strategy, output_dir=config.output_dir, total_steps=steps,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, global_batch_size=config.batch_size, validate=validate,
        validate_every=config.eval_every, tokens_per_example=mean_tokens_per_example(train, 20),
        hparams={**{k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (bool, int, float, str))},
                 "steps": steps})
    if result["terminated"]:
        print(f"[distill] stopped by SIGTERM at step {result['step']}; rerun the same command to resume")
        sys.exit(0)

    # --- Final validation with the student's and teacher's speed, metrics.json, predictions, the model ---
    student_speed, student_outputs = examples_per_second(task, student, dev)
    teacher_speed, teacher_dev = examples_per_second(task, teacher, dev)
    metrics, predictions = task.evaluate(dev, student_outputs, labels, config)
    teacher_metrics = task.evaluate(dev, teacher_dev, labels, config)[0]
    report = {**metrics, **{f"teacher_{k}": v for k, v in teacher_metrics.items()}, **sizes,
              "student_examples_per_second": student_speed, "teacher_examples_per_second": teacher_speed,
              "speedup": student_speed / teacher_speed}
    save_task_model("distill", config, strategy, result, task, student, preprocessor, dev, report, predictions,
                    tokenizer)
    return report


if __name__ == "__main__":
    run(main)
