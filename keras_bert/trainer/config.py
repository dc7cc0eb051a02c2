"""One config parser for every training job: YAML file + `--flag` overrides -> a frozen dataclass.

Each job declares its dataclass beside it (`training.pretrain.PretrainConfig`, `training.finetune.FinetuneConfig`,
usually a `LoopConfig` subclass); its fields
are the only keys a YAML file may set. Unknown keys and values of the wrong type
fail with an error naming the key and the file, before anything is built.

Example:
>>> config = load_config(LoopConfig, "training/configs/pretrain_tiny.yaml", {"batch_size": 8}, ignore_unknown=True)
>>> config.batch_size, config.optimizer
(8, 'adamw')
"""

import argparse
import dataclasses
import os
import re
import typing

import yaml

from keras_bert.optimization import OPTIMIZERS, PRECISIONS


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

    choices = {"strategy": STRATEGIES, "optimizer": OPTIMIZERS, "mixed_precision": (None, *PRECISIONS)}

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

    def use_jit_compile(self):
        """Whether train steps compile with XLA: `jit_compile`, except bfloat16 on a machine without GPU/TPU.

        XLA on CPU runs bfloat16 matmuls in float32 and skips oneDNN's AMX kernels: a `mixed_bfloat16`
        step is then about twice as slow as without XLA, so `jit_compile: true` is ignored there.
        """
        if not self.jit_compile or self.mixed_precision != "mixed_bfloat16":
            return self.jit_compile
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
            return True
        print("jit_compile: off for mixed_bfloat16 on CPU (XLA:CPU runs bfloat16 matmuls in float32)",
              flush=True)
        return False


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
        config_class: a dataclass type such as `LoopConfig`.
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
    for name, allowed in getattr(config, "choices", {}).items():
        if getattr(config, name) not in allowed:
            raise ConfigError(f"{source}: key '{name}' must be one of {', '.join(map(str, allowed))}; "
                              f"got {getattr(config, name)!r}")
    if not isinstance(config, LoopConfig):
        return
    for name in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "accumulation_steps"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{source}: key '{name}' must be >= 1, got {getattr(config, name)}")
    if config.checkpoint_every % config.log_every:
        raise ConfigError(f"{source}: key 'checkpoint_every' ({config.checkpoint_every}) must be a multiple of "
                          f"'log_every' ({config.log_every})")
    steps = getattr(config, "steps", None)
    if steps is not None and steps < 1:
        raise ConfigError(f"{source}: key 'steps' must be >= 1, got {steps}")


def load_config(config_class, path=None, overrides=None, ignore_unknown=False):
    """Reads a YAML config file and applies flag overrides (a None override sets the key to null).

    Args:
        config_class: a dataclass type such as `LoopConfig`.
        path: str or None. YAML file of `{key: value}`; `extends: base.yaml` (relative to it) reads that file
            first and overrides its keys.
        overrides: dict or None. Values from command-line flags (only the flags given); they win over the
            file.
        ignore_unknown: bool. Skip the file's keys that `config_class` does not have (a job reading
            another job's recipe); unknown flags are still errors.

    Returns:
        An instance of `config_class`.
    """
    values = {}
    source = "<defaults>"
    if path is not None:
        values, files = _read_yaml(os.fspath(path))
        # A key may come from any file of the chain, so errors name them all.
        source = files[0] + "".join(f" (extends {f})" for f in files[1:])
        if ignore_unknown:
            known = {f.name for f in dataclasses.fields(config_class)}
            values = {k: v for k, v in values.items() if k in known}
    config_from_dict(config_class, values, source)  # Errors name the file before flags are mixed in.
    return config_from_dict(config_class, {**values, **(overrides or {})}, f"{source} + flags")


def _read_yaml(path, including=()):
    """The `{key: value}` mapping of a YAML config file and the files it was read from (this one first). Its
    `extends: other.yaml` key (a path relative to the file) reads that file first; this file's keys win."""
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}" + (f" (extended by {including[-1]})" if including else ""))
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(values).__name__}")
    base = values.pop("extends", None)
    if base is None:
        return values, [path]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: key 'extends' must be a file name, got {base!r}")
    base = os.path.join(os.path.dirname(path), base)
    if os.path.abspath(base) in map(os.path.abspath, (*including, path)):
        raise ConfigError(f"{path}: key 'extends' makes a cycle through {base}")
    base_values, files = _read_yaml(base, (*including, path))
    return {**base_values, **values}, [path, *files]


def field_help(config_class):
    """`{field: description}` from the `Args:` sections of `config_class` and its bases' docstrings."""
    descriptions = {}
    for klass in reversed(config_class.__mro__):
        name = None
        for line in (klass.__doc__ or "").splitlines():
            match = re.match(r"^\s{8}(\w+): (.*)$", line)
            if match:
                name, text = match.groups()
                descriptions[name] = re.sub(r"^[\w .|]+\. ", "", text, count=1) if ". " in text else text
            elif name and re.match(r"^\s{12}\S", line):
                descriptions[name] += " " + line.strip()
            elif not line.strip() or not line.startswith(" " * 8):
                name = None
    return descriptions


def add_config_flags(parser, config_class):
    """Adds `--key value` flags for every scalar and list field of `config_class` to an argparse parser.

    Flag values are parsed as YAML scalars (`--clipnorm null`, `--jit-compile true`).
    List fields take several values (`--corpus a.txt b.txt`), or comma-separated names (`--labels a,b,c`).
    Each flag's help is the field's description, its default and, where there are any, its choices.
    """
    hints = typing.get_type_hints(config_class)
    descriptions = field_help(config_class)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        annotation = hints[field.name]
        if annotation is dict:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = descriptions.get(field.name, "").rstrip(".")
        text = f"{text}. Default: {'none' if default is None else default}"
        allowed = config_class.choices.get(field.name)
        if allowed:
            text += ". Choices: " + ", ".join("null" if a is None else str(a) for a in allowed)
        text = text.replace("%", "%%")
        is_list = annotation is list or typing.get_args(annotation)[:1] == (list,)
        if is_list:
            comma = field.metadata.get("comma_separated", False)
            # Flags not given stay out of the namespace, so `--key null` can override a file's value.
            parser.add_argument(flag, dest=field.name, nargs="+", default=argparse.SUPPRESS, help=text,
                                type=(lambda v: [x.strip() for x in v.split(",") if x.strip()]) if comma else str)
        else:
            parser.add_argument(flag, dest=field.name, type=yaml.safe_load, default=argparse.SUPPRESS, help=text,
                                metavar=field.name.upper())
    return parser


def parse_job_config(config_class, argv=None, description=None, ignore_unknown=False):
    """A job's one config: `--config FILE` plus a `--key value` flag for every field.

    Args:
        config_class: a dataclass type such as `LoopConfig`.
        argv: list[str] or None. Command-line arguments (None: `sys.argv[1:]`).
        description: str or None. The job's `--help` summary.
        ignore_unknown: bool. See `load_config`.
    """
    parser = JobArgumentParser(description=description)
    parser.add_argument("--config", help=f"YAML file of {config_class.__name__} keys (flags override it)")
    add_config_flags(parser, config_class)
    args = vars(parser.parse_args(argv))
    for name, value in args.items():  # Comma-separated list flags arrive as lists of lists.
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            args[name] = [x for v in value for x in v]
    return load_config(config_class, args.pop("config"), args, ignore_unknown=ignore_unknown)


class JobHelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """`--help` keeps the job's docstring as written and adds each flag's default."""


class JobArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are `ConfigError`s (one line, exit status 2 through `run_job`)."""

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message}")
