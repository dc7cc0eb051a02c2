"""Choosing a `tf.distribute` strategy: `auto`, `one_device`, `mirrored`, `multi_worker`, `tpu`."""

import json
import os

import tensorflow as tf

from keras_bert.trainer.config import STRATEGIES, ConfigError


def create_strategy(name="auto", tpu_address=None):
    """Returns the `tf.distribute.Strategy` named `name`.

    - `auto`: TPU when `TPU_NAME` is set, MultiWorkerMirrored when `TF_CONFIG` lists
      several workers, Mirrored over several local GPUs, else the default strategy.
    - `one_device`: the default strategy (one device, variables placed by TensorFlow).
    - `mirrored`: MirroredStrategy over the local GPUs (or the logical CPUs when there
      are no GPUs but several logical CPU devices, as in tests).
    - `multi_worker`: MultiWorkerMirroredStrategy from `TF_CONFIG`.
    - `tpu`: TPUStrategy through a `TPUClusterResolver`.

    Args:
        name: str. One of `STRATEGIES`.
        tpu_address: str or None. TPU name or grpc address (default: `TPU_NAME`).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")
    if name == "auto":
        name = _auto_strategy_name()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or os.environ.get("TPU_NAME"))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                              "({\"cluster\": {\"worker\": [...]}, \"task\": {\"type\": \"worker\", \"index\": i}})")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _fix_keras_multi_worker_metric_reduction()
        return strategy
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def _fix_keras_multi_worker_metric_reduction():
    """Lets Keras 3's `fit` report scalar metrics under MultiWorkerMirroredStrategy.

    Keras reduces the metrics of a train/test step with
    `strategy.reduce("MEAN", value, axis=0)` across workers, which fails on the scalar
    metric results ("Invalid reduction dimension 0 for input with 0 dimensions").
    Scalars are averaged over the replicas instead (`axis=None`); everything else
    goes to Keras' own reduction.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_keras_bert_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(values, strategy, reduction)

        def reduce(value):
            if getattr(value, "shape", None) is not None and value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica._keras_bert_fixed = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def _auto_strategy_name():
    if os.environ.get("TPU_NAME"):
        return "tpu"
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def check_batch_size(strategy, global_batch_size):
    """Raises a `ConfigError` unless the global batch splits evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(f"batch_size={global_batch_size} is not divisible by the {replicas} replicas of "
                          f"{type(strategy).__name__}; use a multiple of {replicas}")
    return global_batch_size // replicas


def is_chief(strategy):
    """Whether this process writes logs, checkpoints and the final model (worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0
                                                    and "chief" not in resolver.cluster_spec().as_dict())
