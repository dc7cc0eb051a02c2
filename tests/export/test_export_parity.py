"""Every task's `serving_default`, loaded like TF Serving loads it, matches the Keras model on raw strings.

One export per task (session-scoped); the TF1 loader (`tf.compat.v1.saved_model.loader.load` in a
session, feeding and fetching the SignatureDef's tensor names) runs batch 7 (mixed lengths, an empty
string, a text longer than the maximum length) and every text alone (batch 1).
"""

import numpy as np
import pytest

from tests.export.conftest import CLASS_LABELS, MAX_POSITIONS, NER_LABELS, VOCAB
from tests.export.helpers import CONTEXTS, MASKED, PAIRS, QUESTIONS, TEXTS, decode, entity_rows

ATOL = 2e-5


def _batches(*columns):
    """The batch of 7, then each row alone."""
    yield [list(c) for c in columns]
    for i in range(len(columns[0])):
        yield [[c[i]] for c in columns]


def test_classification(exported):
    _, served, reference = exported("classification")
    for (texts,) in _batches(TEXTS):
        outputs = served.run("serving_default", {"text": texts})
        expected = reference.classification(texts, CLASS_LABELS)
        assert outputs["probabilities"].shape == (len(texts), 3) and outputs["probabilities"].dtype == np.float32
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=ATOL)
        assert decode(outputs["label"]).tolist() == expected["label"].tolist()


def test_regression_pair(exported):
    _, served, reference = exported("regression_pair")
    assert set(served.signature_defs["serving_default"].inputs) == {"text", "text_pair"}
    for texts, pairs in _batches(TEXTS, PAIRS):
        outputs = served.run("serving_default", {"text": texts, "text_pair": pairs})
        np.testing.assert_allclose(outputs["score"], reference.regression(texts, pairs)["score"], atol=ATOL)


def test_embedding_mean_pooled(exported):
    _, served, reference = exported("embedding")
    for (texts,) in _batches(TEXTS):
        outputs = served.run("serving_default", {"text": texts})
        assert outputs["embedding"].shape == (len(texts), 16)
        np.testing.assert_allclose(outputs["embedding"], reference.embedding(texts, "mean")["embedding"], atol=ATOL)


def test_fill_mask(exported):
    _, served, reference = exported("fill_mask")
    for (texts,) in _batches(MASKED):
        outputs = served.run("serving_default", {"text": texts})
        expected = reference.fill_mask(texts, top_k=3)
        assert outputs["tokens"].shape == (len(texts), 3)
        assert decode(outputs["tokens"]).tolist() == expected["tokens"].tolist()
        np.testing.assert_allclose(outputs["scores"], expected["scores"], atol=ATOL)
    # No [MASK] (or only after the truncation point): empty tokens and zero scores.
    outputs = served.run("serving_default", {"text": ["no mask here", "", "the cat " * 20 + "[MASK]"]})
    assert (decode(outputs["tokens"]) == "").all() and (outputs["scores"] == 0).all()


def test_ner_word_level_entities(exported):
    _, served, reference = exported("ner")
    seen_entities = 0
    for (texts,) in _batches(TEXTS):
        outputs = served.run("serving_default", {"text": texts})
        width = outputs["entity_labels"].shape[1]
        for name in ("entity_starts", "entity_ends", "entity_text", "entity_scores"):
            assert outputs[name].shape == (len(texts), width)
        got, expected = entity_rows(outputs), reference.ner(texts, NER_LABELS)
        for got_row, expected_row, text in zip(got, expected, texts):
            assert [g[:4] for g in got_row] == [e[:4] for e in expected_row], text
            np.testing.assert_allclose([g[4] for g in got_row], [e[4] for e in expected_row], atol=ATOL)
            seen_entities += len(got_row)
        # Padding: "" labels/text and -1 offsets after each row's entities.
        for b, count in enumerate(outputs["num_entities"]):
            assert (decode(outputs["entity_labels"][b, count:]) == "").all()
            assert (outputs["entity_starts"][b, count:] == -1).all()
    assert seen_entities > 0  # the random tiny model does tag some words


def test_qa_best_span(exported):
    _, served, reference = exported("qa")
    for questions, contexts in _batches(QUESTIONS, CONTEXTS):
        outputs = served.run("serving_default", {"question": questions, "context": contexts})
        expected = reference.qa(questions, contexts, max_answer_length=4)
        assert decode(outputs["answer"]).tolist() == [e[0] for e in expected]
        assert outputs["start"].tolist() == [e[1] for e in expected]
        assert outputs["end"].tolist() == [e[2] for e in expected]
        np.testing.assert_allclose(outputs["score"], [e[3] for e in expected], atol=ATOL)
        for answer, start, end, context in zip(decode(outputs["answer"]), outputs["start"], outputs["end"], contexts):
            assert context[start:end] == answer


@pytest.mark.parametrize("key", ["classification", "fill_mask"])
def test_serve_ids_and_serve_examples(exported, key):
    import tensorflow as tf

    _, served, reference = exported(key)
    texts = MASKED if key == "fill_mask" else TEXTS
    by_text = served.run("serving_default", {"text": texts})
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode("utf-8")]))})).SerializeToString()
        for t in texts]
    by_example = served.run("serve_examples", {"examples": examples})
    for name, value in by_text.items():
        if value.dtype == object:
            assert value.tolist() == by_example[name].tolist()
        else:
            np.testing.assert_allclose(value, by_example[name], atol=1e-6)
    # serve_ids: any batch and length, raw model outputs.
    ids = np.array([[2, 7, 9, 3, 0, 0], [2, 4, 8, 9, 10, 3]], "int32")
    feeds = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32")}
    if key == "fill_mask":
        feeds["masked_positions"] = np.array([[1], [2]], "int32")
    raw = served.run("serve_ids", feeds)
    expected = reference.model(feeds, training=False)
    if key == "fill_mask":
        np.testing.assert_allclose(raw["mlm_logits"], np.asarray(expected["mlm_logits"]), atol=ATOL)
    else:
        np.testing.assert_allclose(raw["logits"], np.asarray(expected), atol=ATOL)


def test_classification_exported_in_bfloat16(model_dirs, tmp_path):
    """`precision="bfloat16"`: the graph's matmuls run in bfloat16, outputs stay float32 and close."""
    import keras
    import tensorflow as tf

    import keras_bert
    from keras_bert.export import export_model_dir
    from tests.export.helpers import Tf1Model
    from tests.export.reference import Reference

    model_dir = model_dirs("classifier")
    path = export_model_dir(model_dir, str(tmp_path / "sst2_bf16"), "classification", precision="bfloat16",
                            warmup=False, server_configs=False)
    assert keras.config.dtype_policy().name == "float32"  # The global policy is left as it was.
    graph = tf.saved_model.load(path).signatures["serving_default"].graph.as_graph_def()
    functions = [f.node_def for f in graph.library.function] + [graph.node]
    bf16_matmuls = [n.name for nodes in functions for n in nodes
                    if n.op in ("MatMul", "BatchMatMulV2", "Einsum") and n.attr["T"].type == tf.bfloat16]
    assert bf16_matmuls, "no bfloat16 matmul in the exported graph"
    served = Tf1Model(path)
    try:
        outputs = served.run("serving_default", {"text": TEXTS})
    finally:
        served.close()
    expected = Reference(keras_bert.load(model_dir), VOCAB, MAX_POSITIONS).classification(TEXTS, CLASS_LABELS)
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=0.05)


def _examples(**columns):
    import tensorflow as tf

    names = list(columns)
    return [tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
        for name, value in zip(names, row)})).SerializeToString() for row in zip(*columns.values())]


def test_classification_signature_for_tf_serving_classify(exported):
    """`classification`: method tensorflow/serving/classify, tf.Examples in `inputs`, `classes` and `scores`."""
    _, served, _ = exported("classification")
    signature = served.signature_defs["classification"]
    assert signature.method_name == "tensorflow/serving/classify"
    assert set(signature.inputs) == {"inputs"} and set(signature.outputs) == {"classes", "scores"}
    outputs = served.run("classification", {"inputs": _examples(text=TEXTS)})
    by_text = served.run("serving_default", {"text": TEXTS})
    assert decode(outputs["classes"]).tolist() == [CLASS_LABELS] * len(TEXTS)
    np.testing.assert_allclose(outputs["scores"], by_text["probabilities"], atol=1e-6)


def test_regression_signature_for_tf_serving_regress(exported):
    _, served, _ = exported("regression_pair")
    signature = served.signature_defs["regression"]
    assert signature.method_name == "tensorflow/serving/regress"
    assert set(signature.inputs) == {"inputs"} and set(signature.outputs) == {"outputs"}
    outputs = served.run("regression", {"inputs": _examples(text=TEXTS, text_pair=PAIRS)})
    by_text = served.run("serving_default", {"text": TEXTS, "text_pair": PAIRS})
    np.testing.assert_allclose(outputs["outputs"], by_text["score"], atol=1e-6)


def test_ner_windows_are_the_evaluation_windows(tmp_path):
    """The reference's windows and max-context choice (used above for texts over the window) are read_harem's."""
    import json

    from keras_bert.data import read_harem
    from keras_bert.data.ner import document_windows
    from keras_bert.tokenization import BertTokenizer

    text = TEXTS[2]
    path = tmp_path / "doc.json"
    path.write_text(json.dumps([{"doc_text": text, "entities": []}]))
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    examples = read_harem(str(path), tokenizer, classes=["PER"], sequence_length=MAX_POSITIONS, doc_stride=128)
    assert len(examples) > 1  # the text is longer than one window
    ids = tokenizer(np.array([text])).to_list()[0]
    starts = [-1 if i and VOCAB[t].startswith("##") else 0 for i, t in enumerate(ids)]
    windows = document_windows(starts, MAX_POSITIONS - 2, 128)
    assert [(p[1], p[-2] + 1) for p in examples.positions] == windows
    chosen = {}
    for row, (begin, end) in enumerate(windows):  # the reference's rule, first window on ties
        for position in range(begin, end):
            score = min(position - begin, end - 1 - position) + 0.01 * (end - begin)
            if position not in chosen or score > chosen[position][0]:
                chosen[position] = (score, row)
    for row, (positions, marks) in enumerate(zip(examples.positions, examples.max_context)):
        assert [p >= 0 and chosen[p][1] == row for p in positions] == list(marks)
