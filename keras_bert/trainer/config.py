"""One config parser for every training job: YAML file + `--flag` overrides -> a frozen dataclass.

Each job declares a dataclass (`PretrainConfig`, `FinetuneConfig`); its fields
are the only keys a YAML file may set. Unknown keys and values of the wrong type
fail with an error naming the key and the file, before anything is built.

Example:
>>> config = load_config(PretrainConfig, "training/configs/pretrain_tiny.yaml", {"steps": 20})
"""

import argparse
import dataclasses
import os
import typing

import yaml


class ConfigError(ValueError):
    """A config file or flag is missing, unknown or malformed."""


STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Fields every training job shares (strategy, loop, checkpoints, logging, optimizer).

    Args:
        output_dir: str. Where logs/, checkpoints/ and the final model go.
        strategy: str. One of `STRATEGIES`.
        batch_size: int. Global batch size (split over replicas).
        seed: int. Seeds Keras, dropout and the data order.
        log_every: int. Steps between TensorBoard scalars (and a Keras "epoch").
        checkpoint_every: int. Steps between checkpoints; a multiple of `log_every`.
        keep_checkpoints: int. Newest checkpoints kept on disk.
        optimizer: str. `adamw`, `lamb`, `adam` or `sgd`.
        learning_rate: float. Peak learning rate.
        warmup_steps: int or None. Linear-warmup steps; None uses `warmup_proportion`.
        warmup_proportion: float. Share of the steps used for warmup.
        end_learning_rate: float. Learning rate at the last step.
        decay_power: float. 1.0 is linear decay.
        weight_decay: float. Decoupled weight decay (not on LayerNorm and bias).
        clipnorm: float or None. Global gradient-norm clipping.
        accumulation_steps: int. Batches per optimizer update.
        mixed_precision: str or None. `mixed_bfloat16` or `mixed_float16`.
        jit_compile: bool. Compile train steps with XLA.
        profile_steps: str or None. e.g. "20,25": profile those steps to TensorBoard.
    """

    output_dir: typing.Optional[str] = None
    strategy: str = "auto"
    batch_size: int = 32
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    optimizer: str = "adamw"
    learning_rate: float = 1e-4
    warmup_steps: typing.Optional[int] = None
    warmup_proportion: float = 0.01
    end_learning_rate: float = 0.0
    decay_power: float = 1.0
    weight_decay: float = 0.01
    clipnorm: typing.Optional[float] = 1.0
    accumulation_steps: int = 1
    mixed_precision: typing.Optional[str] = None
    jit_compile: bool = False
    profile_steps: typing.Optional[str] = None


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


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(LoopConfig):
    """The fine-tuning job (`python -m training.finetune`).

    Args:
        task: str. `sst2`, `squad`, `harem`, `assin2_rte` or `assin2_sts`.
        init: str or None. A directory `keras_bert.load` reads (pretraining output or converted checkpoint).
        train_file: str. Training data (relative paths are relative to the repository root).
        validation_file: str. Dev data for the validation run.
        max_seq_length: int. Longest packed sequence.
        epochs: float. Passes over the training data (sets the number of steps).
        steps: int or None. Optimizer steps; overrides `epochs`.
        eval_every: int or None. Steps between validations; None validates at the end only.
        eval_batch_size: int. Batch size of validation and prediction.
        max_train_examples: int or None. Use only the first N training examples.
        max_eval_examples: int or None. Use only the first N dev examples.
        dropout: float or None. Head dropout; None uses the encoder's.
        harem_scheme: str. `selective` (5 classes) or `total` (10 classes).
        doc_stride: int. SQuAD window stride.
        max_query_length: int. SQuAD question length.
    """

    task: str = "sst2"
    init: typing.Optional[str] = None
    train_file: typing.Optional[str] = None
    validation_file: typing.Optional[str] = None
    max_seq_length: int = 128
    epochs: float = 1.0
    steps: typing.Optional[int] = None
    eval_every: typing.Optional[int] = None
    eval_batch_size: int = 64
    max_train_examples: typing.Optional[int] = None
    max_eval_examples: typing.Optional[int] = None
    dropout: typing.Optional[float] = None
    harem_scheme: str = "selective"
    doc_stride: int = 128
    max_query_length: int = 64


def _check_type(name, value, annotation, source):
    """Checks (and lightly coerces) one value against its dataclass annotation."""
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)
    if optional:
        if value is None:
            return None
        annotation = [a for a in typing.get_args(annotation) if a is not type(None)][0]
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads `1e-4` (no dot) as a string.
        except ValueError:
            pass
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # A flag such as `--output-dir 2024` parses as a YAML int.
    if annotation is list and isinstance(value, str):
        return [value]
    if annotation is list and isinstance(value, tuple):
        return list(value)
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: key '{name}' must be {annotation.__name__}, got {value!r} "
                      f"({type(value).__name__})")


def config_from_dict(config_class, values, source="<dict>"):
    """Builds `config_class` from a dict, rejecting unknown keys and wrong types.

    Args:
        config_class: a dataclass type such as `PretrainConfig`.
        values: dict. Field name -> value.
        source: str. Named in error messages (the YAML file, or "--flags").
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {config_class.__name__}; "
                          f"known keys: {sorted(fields)}")
    hints = typing.get_type_hints(config_class)
    checked = {name: _check_type(name, value, hints[name], source) for name, value in values.items()}
    config = config_class(**checked)
    _validate(config, source)
    return config


def _validate(config, source):
    if config.strategy not in STRATEGIES:
        raise ConfigError(f"{source}: key 'strategy' must be one of {STRATEGIES}, got {config.strategy!r}")
    for name in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "accumulation_steps"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{source}: key '{name}' must be >= 1, got {getattr(config, name)}")
    if config.checkpoint_every % config.log_every:
        raise ConfigError(f"{source}: key 'checkpoint_every' ({config.checkpoint_every}) must be a multiple of "
                          f"'log_every' ({config.log_every})")
    if config.mixed_precision not in (None, "float32", "mixed_bfloat16", "mixed_float16"):
        raise ConfigError(f"{source}: key 'mixed_precision' must be mixed_bfloat16, mixed_float16 or null, "
                          f"got {config.mixed_precision!r}")
    steps = getattr(config, "steps", None)
    if steps is not None and steps < 1:
        raise ConfigError(f"{source}: key 'steps' must be >= 1, got {steps}")


def load_config(config_class, path=None, overrides=None):
    """Reads a YAML config file and applies flag overrides (None values are ignored).

    Args:
        config_class: a dataclass type such as `PretrainConfig`.
        path: str or None. YAML file of `{key: value}`.
        overrides: dict or None. Values from command-line flags; they win over the file.

    Returns:
        An instance of `config_class`.
    """
    values = {}
    source = "<defaults>"
    if path is not None:
        source = os.fspath(path)
        if not os.path.exists(source):
            raise ConfigError(f"config file not found: {source}")
        with open(source, encoding="utf-8") as f:
            try:
                values = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{source}: not valid YAML ({e})") from e
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    config_from_dict(config_class, values, source)  # Errors name the file before flags are mixed in.
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    return config_from_dict(config_class, {**values, **flags}, f"{source} + flags")


def add_config_flags(parser, config_class):
    """Adds `--key value` flags for every scalar field of `config_class` to an argparse parser.

    Flag values are parsed as YAML scalars (`--clipnorm null`, `--jit-compile true`).
    List fields take several values (`--corpus a.txt b.txt`).
    """
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        if hints[field.name] is list:
            parser.add_argument(flag, dest=field.name, nargs="+", default=None)
        elif hints[field.name] is not dict:
            parser.add_argument(flag, dest=field.name, type=yaml.safe_load, default=None)
    return parser


def parse_job_config(config_class, argv=None, description=None):
    """A job's one config: `--config FILE` plus a `--key value` flag for every field.

    Args:
        config_class: a dataclass type such as `PretrainConfig`.
        argv: list[str] or None. Command-line arguments (None: `sys.argv[1:]`).
        description: str or None. The job's `--help` summary.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help=f"YAML file of {config_class.__name__} keys")
    add_config_flags(parser, config_class)
    args = vars(parser.parse_args(argv))
    return load_config(config_class, args.pop("config"), args)
