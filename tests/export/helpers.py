"""Loading an export the way TF Serving does (TF1 loader in a session) and the shared test texts."""

import numpy as np
import tensorflow as tf

# 7 texts of mixed lengths: empty, multi-byte characters, and longer than the maximum (16 pieces).
TEXTS = [
    "",
    "the cat sat on the mat",
    "John lives in Paris , New York and Berlin and likes to play with the big dog and the small cat",
    "john lives in paris",
    "café é big dog !",
    "new york and berlin",
    "Who PLAYS ?",
]
PAIRS = ["a dog", "", "the mat", "where does john play ?", "berlin", "x " * 30, "cat"]
MASKED = [
    "",
    "the [MASK] sat on the mat",
    "the cat sat on the mat and the dog sat on the mat and john lives in [MASK]",
    "no mask here",
    "[MASK]",
    "[MASK] lives in [MASK]",
    "café [MASK] !",
]
QUESTIONS = ["who lives in paris ?", "", "where does john play ?", "what is big ?", "who ?", "a " * 20, "where ?"]
CONTEXTS = [
    "john lives in paris",
    "the cat sat on the mat",
    "",
    "the café é dog is big and the cat is small",
    "John lives in Paris , New York and Berlin and likes to play with the big dog and the small cat",
    "berlin",
    "in new york",
]


class Tf1Model:
    """A SavedModel loaded by `tf.compat.v1.saved_model.loader.load` in its own graph and session.

    Args:
        export_dir: str. The version directory.
    """

    def __init__(self, export_dir):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], export_dir)
        self.signature_defs = meta_graph.signature_def

    def run(self, signature_name, feeds):
        """Feeds and fetches the signature's tensor names; returns `{output: np.ndarray}`.

        Args:
            signature_name: str. E.g. "serving_default".
            feeds: dict of str to array-like. The signature's inputs.
        """
        signature = self.signature_defs[signature_name]
        assert set(feeds) == set(signature.inputs), (sorted(feeds), sorted(signature.inputs))
        feed_dict = {signature.inputs[k].name: np.asarray(v, dtype=object if isinstance(v[0], (str, bytes)) else None)
                     for k, v in feeds.items()}
        names = sorted(signature.outputs)
        values = self.session.run([signature.outputs[n].name for n in names], feed_dict)
        return dict(zip(names, values))

    def close(self):
        """Closes the session."""
        self.session.close()


def decode(array):
    """bytes ndarray -> str ndarray (same shape)."""
    return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(array)


def entity_rows(outputs):
    """Dense NER outputs -> per row list of (label, start, end, text, score)."""
    rows = []
    for b, count in enumerate(outputs["num_entities"]):
        rows.append([(decode(outputs["entity_labels"][b, e]), int(outputs["entity_starts"][b, e]),
                      int(outputs["entity_ends"][b, e]), decode(outputs["entity_text"][b, e]),
                      float(outputs["entity_scores"][b, e])) for e in range(count)])
    return rows
