"""Flag and config-file parsing for `serving.server`, in TF Serving's formats."""

import dataclasses
import re

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which version directories of a model to serve.

    Args:
        kind: str. One of `"latest"`, `"all"` or `"specific"`.
        num_versions: int. How many of the newest versions `"latest"` serves.
        versions: tuple of int. The versions `"specific"` serves.
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def select(self, available):
        """Returns the subset of `available` versions (ints) to serve.

        Args:
            available: iterable of int. Version directories found on disk.
        """
        available = sorted(set(available))
        if self.kind == "all":
            return set(available)
        if self.kind == "specific":
            return set(self.versions) & set(available)
        return set(available[-max(self.num_versions, 1):]) if available else set()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model the server serves.

    Args:
        name: str. The model name used in URLs and `ModelSpec.name`.
        base_path: str. Directory holding `<integer version>/` SavedModels.
        policy: VersionPolicy. Which versions to serve.
        version_labels: dict of str to int. Labels such as `stable`.
    """

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    version_labels: dict = dataclasses.field(default_factory=dict)


def parse_model_config_file(path):
    """Reads a text-format `ModelServerConfig` into a list of `ModelSpec`.

    Args:
        path: str. Path of the `--model_config_file`.
    """
    with open(path, encoding="utf-8") as config_file:
        config = text_format.Parse(
            config_file.read(), model_server_config_pb2.ModelServerConfig()
        )
    specs = []
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ValueError(f"{path}: every model needs a name and a base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"{path}: model {model.name!r} has platform "
                f"{model.model_platform!r}; only 'tensorflow' is served"
            )
        policy_proto = model.model_version_policy
        which = policy_proto.WhichOneof("policy_choice")
        if which == "all":
            policy = VersionPolicy(kind="all")
        elif which == "specific":
            policy = VersionPolicy(
                kind="specific", versions=tuple(policy_proto.specific.versions)
            )
        else:
            policy = VersionPolicy(
                kind="latest",
                num_versions=policy_proto.latest.num_versions or 1,
            )
        specs.append(
            ModelSpec(
                name=model.name,
                base_path=model.base_path,
                policy=policy,
                version_labels=dict(model.version_labels),
            )
        )
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate model names in {names}")
    return specs


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's `BatchingParameters` (session_bundle_config.proto).

    Args:
        max_batch_size: int. Most examples merged into one call.
        batch_timeout_micros: int. Longest wait for a batch to fill.
        max_enqueued_batches: int. Queue bound; beyond it requests get 503.
        num_batch_threads: int. Batches run in parallel.
        pad_variable_length_inputs: bool. Pad axis 1 so that inputs of
            different lengths can be merged.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 1000000
    num_batch_threads: int = 4
    pad_variable_length_inputs: bool = False


_WRAPPED_INT = re.compile(r"(\w+)\s*\{\s*value\s*:\s*(-?\d+)\s*\}")
_PLAIN_FIELD = re.compile(r"(\w+)\s*:\s*([^\s{}]+)")


def parse_batching_parameters(path):
    """Reads a text-format `BatchingParameters` file.

    The `tensorflow-serving-api` wheel does not ship the proto, so the small
    subset of the text format that the file uses is parsed here.

    Args:
        path: str or None. The `--batching_parameters_file`; None gives the
            defaults.
    """
    if not path:
        return BatchingParameters()
    with open(path, encoding="utf-8") as params_file:
        text = re.sub(r"#.*", "", params_file.read())
    known = {field.name for field in dataclasses.fields(BatchingParameters)}
    values = {}
    for name, value in _WRAPPED_INT.findall(text):
        values[name] = int(value)
    for name, value in _PLAIN_FIELD.findall(_WRAPPED_INT.sub("", text)):
        if name == "pad_variable_length_inputs":
            values[name] = value.lower() == "true"
        elif name in known:
            values[name] = int(value)
    # Fields TF Serving knows but this server does not use (for example
    # allowed_batch_sizes, thread_pool_name) are accepted and ignored.
    return BatchingParameters(**{k: v for k, v in values.items() if k in known})
