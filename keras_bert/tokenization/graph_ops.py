"""Listing the op types a traced graph uses, and the TF Serving op allow-list."""

import os

import tensorflow as tf

ALLOWLIST_PATH = os.path.join(os.path.dirname(__file__), "serving_ops_allowlist.txt")


def _as_graph_def(concrete_function_or_graph_def):
    value = concrete_function_or_graph_def
    if isinstance(value, tf.compat.v1.GraphDef):
        return value
    if hasattr(value, "graph") and hasattr(value.graph, "as_graph_def"):
        return value.graph.as_graph_def()
    if isinstance(value, tf.Graph):
        return value.as_graph_def()
    if hasattr(value, "as_graph_def"):
        return value.as_graph_def()
    raise TypeError(
        "expected a tf.GraphDef, tf.Graph or concrete function, got "
        f"{type(value).__name__}"
    )


def list_graph_ops(concrete_function_or_graph_def):
    """Returns every op type used by a graph, including nested library functions.

    Args:
        concrete_function_or_graph_def: a concrete function (`tf.function(...)
            .get_concrete_function(...)`, or a SavedModel signature), a `tf.Graph`
            or a `tf.compat.v1.GraphDef` (e.g. from a SavedModel's MetaGraphDef).

    Returns:
        set[str]: op type names (e.g. "FastWordpieceTokenizeWithOffsets", "ConcatV2").
        Calls to library functions (op type = a function name) are not listed as ops;
        the ops inside those functions are.
    """
    graph_def = _as_graph_def(concrete_function_or_graph_def)
    functions = {f.signature.name: f for f in graph_def.library.function}
    ops = set()
    for node in graph_def.node:
        if node.op not in functions:
            ops.add(node.op)
    for function in functions.values():
        for node in function.node_def:
            if node.op not in functions:
                ops.add(node.op)
    return ops


def load_allowlist(path=None):
    """Reads the allow-list of op types that TF Serving's stock build registers.

    Args:
        path: str or None, an allow-list file (one op name per line, '#' comments);
            defaults to keras_bert/tokenization/serving_ops_allowlist.txt.

    Returns:
        set[str]: allowed op type names.
    """
    path = path or ALLOWLIST_PATH
    allowed = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                allowed.add(line)
    return allowed


def disallowed_ops(concrete_function_or_graph_def, allowlist=None):
    """Returns the op types of a graph that are not in the allow-list.

    Args:
        concrete_function_or_graph_def: see `list_graph_ops`.
        allowlist: set[str] or None (None = `load_allowlist()`).

    Returns:
        set[str]: op types not allowed (empty when the graph is servable).
    """
    allowlist = load_allowlist() if allowlist is None else allowlist
    return list_graph_ops(concrete_function_or_graph_def) - set(allowlist)
