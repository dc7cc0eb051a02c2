"""Pretrains BERT (masked LM + next sentence) with `model.fit`, resumable at the exact step.

    python -m training.pretrain --config training/configs/pretrain_tiny.yaml \
        --corpus ../shared/data/english_books/austen-emma.txt --output-dir /tmp/bert_tiny --steps 200

Without `--vocab` a WordPiece vocabulary is built from the corpus
(keras_bert.tokenization.learn_vocabulary, as training.vocab does);
without `--train-files` pretraining TFRecords are written from the corpus
(keras_bert.data, as training.prepare_pretraining does). Outputs under
`--output-dir`: `logs/` (TensorBoard: train and validation runs), `checkpoints/`
(rerun the same command to resume after a crash or SIGTERM), and the final
model, readable by `keras_bert.load(DIR)` and usable as `--init DIR` for fine-tuning.
"""

import dataclasses
import glob
import os
import sys
import typing


import keras_bert
from keras_bert import data as bert_data
from keras_bert.tokenization import BertTokenizer, learn_vocabulary, write_vocabulary
from keras_bert.trainer import (ConfigError, LoopConfig, build_optimizer, check_not_empty, config_from_dict,
                                fit_resumable, is_chief, parse_job_config, prepare, run)
from keras_bert.trainer.tensorboard import mean_tokens_per_example


@dataclasses.dataclass(frozen=True)
class PretrainConfig(LoopConfig):
    """The pretraining job (`python -m training.pretrain`).

    Args:
        preset: str. `BertConfig` preset name.
        model: dict. `BertConfig` overrides (hidden_size, num_layers, ...).
        corpus: list of str. Raw text files (one sentence a line, blank line between documents).
        vocab: str or None. vocab.txt; None builds one from the corpus.
        vocab_size: int. Size of a vocabulary built from the corpus.
        cased: bool. Keep case and accents (e.g. BERTimbau).
        train_files: list of str. Pretraining TFRecords; empty builds them from the corpus.
        validation_files: list of str. Held-out TFRecords for the validation run.
        validation_steps: int. Batches per validation.
        max_seq_length: int. Packed length.
        max_predictions_per_seq: int. Masked positions per sequence.
        masked_lm_prob: float. Share of tokens masked.
        dupe_factor: int. Passes over the corpus when building instances.
        dynamic_masking: bool. New masks every epoch (RoBERTa-style).
        whole_word_masking: bool. Mask all pieces of a word together.
        steps: int. Optimizer steps of this phase.
        phases: list of dict. Later phases (e.g. seq 512); each overrides fields and
            starts from the previous phase's weights.
    """

    preset: str = "bert_tiny"
    model: dict = dataclasses.field(default_factory=dict)
    corpus: list = dataclasses.field(default_factory=list)
    vocab: typing.Optional[str] = None
    vocab_size: int = 8000
    cased: bool = False
    train_files: list = dataclasses.field(default_factory=list)
    validation_files: list = dataclasses.field(default_factory=list)
    validation_steps: int = 10
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 5
    dynamic_masking: bool = False
    whole_word_masking: bool = False
    steps: int = 1000
    phases: list = dataclasses.field(default_factory=list)


def parse_config(argv=None):
    """The one config of this job: `--config FILE` plus flag overrides."""
    config = parse_job_config(PretrainConfig, argv, __doc__.splitlines()[0])
    if not config.output_dir:
        raise ConfigError("--output-dir (or output_dir in the config) is required")
    return config


def build_vocabulary(config):
    """Returns a vocab.txt path: `config.vocab`, one built earlier in the output dir, or a new one."""
    if config.vocab:
        return config.vocab
    path = os.path.join(config.output_dir, "data", "vocab.txt")
    if not os.path.exists(path):
        if not config.corpus:
            raise ConfigError("give --vocab, or --corpus to build a vocabulary from")
        write_vocabulary(learn_vocabulary(config.corpus, config.vocab_size, cased=config.cased), path)
    return path


def build_pretraining_files(config, tokenizer):
    """Returns the TFRecords to train on: `config.train_files`, or shards written from the corpus once."""
    if config.train_files:
        return [f for pattern in config.train_files for f in sorted(glob.glob(pattern)) or [pattern]]
    data_dir = os.path.join(config.output_dir, "data", f"seq{config.max_seq_length}")
    done = os.path.join(data_dir, "DONE")
    if not os.path.exists(done):
        if not config.corpus:
            raise ConfigError("give --train-files, or --corpus to build pretraining data from")
        _, stats = bert_data.write_pretraining_data(
            config.corpus, tokenizer, data_dir, max_seq_length=config.max_seq_length,
            max_predictions_per_seq=config.max_predictions_per_seq, num_shards=2, dupe_factor=config.dupe_factor,
            masked_lm_prob=config.masked_lm_prob, whole_word_masking=config.whole_word_masking, seed=config.seed)
        summary = stats.summary()
        print("[data] " + summary.replace("\n", "\n[data] "), flush=True)
        with open(done, "w") as f:
            f.write(f"{stats.instances} instances\n{summary}\n")
    return sorted(glob.glob(os.path.join(data_dir, "*.tfrecord*")))


def pretrain(config, init=None):
    """Runs one pretraining phase described by `config`; returns the trained `BertPretrainer`."""
    # --- Strategy, precision, seeds ---
    strategy = prepare(config)

    # --- Vocabulary and data (global batches; the strategy splits them over replicas) ---
    vocab_file = build_vocabulary(config)
    tokenizer = BertTokenizer(vocab_file, lowercase=not config.cased)
    train_files = build_pretraining_files(config, tokenizer)
    dataset = bert_data.pretraining_dataset(
        train_files, config.batch_size, seed=config.seed, dynamic_masking=config.dynamic_masking,
        tokenizer=tokenizer, masked_lm_prob=config.masked_lm_prob, whole_word_masking=config.whole_word_masking)
    check_not_empty(dataset)
    validation = None
    if config.validation_files:
        validation = bert_data.pretraining_dataset(config.validation_files, config.batch_size, seed=config.seed,
                                                   shuffle=False, repeat=True).take(config.validation_steps)
        check_not_empty(validation, "validation dataset")

    # --- Model and optimizer, under the strategy scope ---
    with strategy.scope():
        if init is not None:
            model = keras_bert.load(init)
        else:
            bert_config = keras_bert.BertConfig.from_preset(
                config.preset, **{"vocab_size": tokenizer.vocabulary_size(), "lowercase": not config.cased,
                                  **config.model})
            model = keras_bert.BertPretrainer(keras_bert.BertEncoder(bert_config))
        model.compile(optimizer=build_optimizer(config, config.steps), jit_compile=config.use_jit_compile())

    # --- Train: resumes from OUTPUT/checkpoints when they exist ---
    def validate(model):
        return model.evaluate(validation, verbose=0, return_dict=True)

    profile = tuple(int(s) for s in config.profile_steps.split(",")) if config.profile_steps else None
    result = fit_resumable(
        model, dataset, strategy=strategy, output_dir=config.output_dir, total_steps=config.steps,
        log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints, global_batch_size=config.batch_size,
        validate=validate if validation is not None else None, validate_every=config.checkpoint_every,
        hparams=_hparams(config), tokens_per_example=mean_tokens_per_example(dataset, 5),
        profile_steps=profile)
    if result["terminated"]:
        print(f"[pretrain] stopped by SIGTERM at step {result['step']}; rerun the same command to resume")
        sys.exit(0)

    # --- Save the final model (keras_bert.load(OUTPUT) and --init OUTPUT read it) ---
    if is_chief(strategy):
        keras_bert.save(model, config.output_dir, vocab_file=vocab_file, lowercase=not config.cased)
    print(f"[pretrain] done at step {result['step']}; model saved to {config.output_dir}")
    return model


def _hparams(config):
    values = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (bool, int, float, str))}
    values.update({f"model.{k}": v for k, v in config.model.items()})
    return values


def main(argv=None):
    config = parse_config(argv)
    # --- Phases: the first is the config itself; later ones override fields (e.g. seq 512) ---
    phases = [{}] + list(config.phases)
    previous = None
    for index, overrides in enumerate(phases):
        phase = config if not index else config_from_dict(
            PretrainConfig, {**_without_phases(config), **overrides, "phases": [],
                             "output_dir": os.path.join(config.output_dir, f"phase{index + 1}")},
            f"phases[{index - 1}]")
        pretrain(phase, init=previous)
        previous = phase.output_dir


def _without_phases(config):
    values = dataclasses.asdict(config)
    values.pop("phases")
    return values


if __name__ == "__main__":
    run(main)
