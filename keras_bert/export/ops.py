"""The op types of an exported SavedModel, and the allow-list TF Serving's stock build satisfies."""

import os

from keras_bert.tokenization import list_graph_ops, load_allowlist

ALLOWLIST_PATH = os.path.join(os.path.dirname(__file__), "serving_ops_allowlist.txt")
# Ops whose op definition is in TensorFlow's core but whose kernel is Python (tf.py_function,
# tf.numpy_function): registered, yet tensorflow_model_server has no kernel to run them.
PYTHON_KERNEL_OPS = frozenset({"EagerPyFunc", "PyFunc", "PyFuncStateless"})


def export_allowlist():
    """Returns the allowed op types: the tokenizer allow-list plus the model/export one.

    Returns:
        set[str]: op type names.
    """
    return load_allowlist() | load_allowlist(ALLOWLIST_PATH)


def saved_model_ops(saved_model_dir):
    """Lists every op type in every MetaGraph of a SavedModel, nested library functions included.

    Args:
        saved_model_dir: str. A SavedModel directory.

    Returns:
        set[str]: op type names.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops |= list_graph_ops(meta_graph.graph_def)
    return ops


def unservable_ops(saved_model_dir):
    """Lists the op types of a SavedModel that TF Serving's stock build cannot run.

    That build registers TensorFlow's core ops and the tensorflow-text ops: an op is
    unservable when it is not registered here with `tensorflow_text` imported (a custom
    op library), or when its kernel is Python (`PYTHON_KERNEL_OPS`). Exports are held to
    the narrower `export_allowlist()` (the ops this project's graphs use).

    Args:
        saved_model_dir: str. A SavedModel directory.

    Returns:
        list[str]: sorted op type names; empty when all can run.
    """
    import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops TF Serving links)
    from tensorflow.python.framework import op_def_registry

    return sorted(op for op in saved_model_ops(saved_model_dir)
                  if op in PYTHON_KERNEL_OPS or op_def_registry.get(op) is None)
