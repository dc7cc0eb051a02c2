"""The op types of an exported SavedModel, and the allow-list TF Serving's stock build satisfies."""

import os

from keras_bert.tokenization import list_graph_ops, load_allowlist

ALLOWLIST_PATH = os.path.join(os.path.dirname(__file__), "serving_ops_allowlist.txt")


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
