"""Fine-tuning readers round-trip real files from ../shared/data into batches."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_bert.data import (
    DataError,
    classification_dataset,
    conll_dataset,
    ner_examples_dataset,
    read_assin2,
    read_conll,
    read_harem,
    read_squad,
    read_text_examples,
    squad_dataset,
    text_examples_dataset,
)
from keras_bert.tokenization import BertTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO_ROOT, "..", "shared", "data")


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} not found (../shared/data is absent)")
    return path


@pytest.fixture(scope="module")
def uncased():
    return BertTokenizer(_need(os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt")))


@pytest.fixture(scope="module")
def portuguese():
    path = _need(os.path.join(DATA, "vocab", "bertimbau-base-portuguese-cased", "vocab.txt"))
    return BertTokenizer(path, lowercase=False)


def test_sst2_dev_fixed_and_bucketed(uncased):
    path = _need(os.path.join(DATA, "sst2", "dev.tsv"))
    dataset, examples = classification_dataset(
        path, uncased, reader_kwargs={"label_list": ["0", "1"]}, sequence_length=64, batch_size=16
    )
    assert len(examples) == 872 and examples.skipped.summary() == "nothing skipped"
    x, y = next(iter(dataset))
    assert x["token_ids"].shape == (16, 64) and y.shape == (16,) and y.dtype == tf.int32
    assert y.numpy().tolist() == examples.labels[:16]
    assert np.all(x["token_ids"].numpy()[:, 0] == uncased.cls_token_id)
    bucketed = text_examples_dataset(
        examples, uncased, sequence_length=64, batch_size=16, bucket_boundaries=[16, 32]
    )
    total, widths = 0, set()
    for x, y in bucketed:
        total += int(y.shape[0])
        widths.add(int(x["token_ids"].shape[1]))
        assert int(tf.reduce_min(tf.reduce_sum(x["padding_mask"], 1))) >= 3
    assert total == 872 and min(widths) < 64


def test_label_not_in_set_names_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabel\ngood\t1\n\nbad\t7\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:4: label '7'"):
        read_text_examples(path, label_list=["0", "1"])
    examples = read_text_examples(path, label_list=["0", "1"], skip_bad_rows=True)
    assert len(examples) == 1 and examples.skipped == {"label_not_in_set": 1, "empty_line": 1}


def test_jsonl_pair_regression(tmp_path, uncased):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"a": "a cat", "b": "a dog", "score": 2.5}\n{"a": "x", "b": "y", "score": 1}\n')
    examples = read_text_examples(path, text_columns=("a", "b"), label_column="score", regression=True)
    x, y = next(iter(text_examples_dataset(examples, uncased, sequence_length=8, batch_size=2)))
    assert y.dtype == tf.float32 and y.numpy().tolist() == [2.5, 1.0]
    assert x["segment_ids"].numpy()[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0]


def test_assin2_entailment_and_similarity(portuguese):
    path = _need(os.path.join(DATA, "portuguese", "assin2", "assin2-dev.xml"))
    entailment = read_assin2(path, "entailment")
    assert len(entailment) == 500 and sum(entailment.labels) == 250
    x, y = next(iter(text_examples_dataset(entailment, portuguese, sequence_length=64, batch_size=8)))
    assert x["token_ids"].shape == (8, 64) and y.numpy().tolist() == [1, 1, 0, 1, 1, 0, 1, 1][: 8]
    assert int(x["segment_ids"].numpy().max()) == 1
    similarity = read_assin2(path, "similarity")
    _, y = next(iter(text_examples_dataset(similarity, portuguese, sequence_length=64, batch_size=4)))
    np.testing.assert_allclose(y.numpy()[:3], [4.9, 4.8, 3.6], rtol=1e-6)


def test_conll_lener_br(portuguese):
    path = _need(os.path.join(DATA, "portuguese", "ner_conll", "lener_br", "dev.conll"))
    dataset, examples = conll_dataset(path, portuguese, scheme="IOB2", sequence_length=128, batch_size=8)
    assert len(examples) == 1176
    assert examples.label_list[0] == "O" and "B-PESSOA" in examples.label_list
    x, labels = next(iter(dataset))
    assert x["token_ids"].shape == (8, 128) and labels.shape == (8, 128) and labels.dtype == tf.int32
    labels, ids, mask = labels.numpy(), x["token_ids"].numpy(), x["padding_mask"].numpy()
    assert np.all(labels[:, 0] == -1) and np.all(labels[mask == 0] == -1)
    vocabulary = portuguese.get_vocabulary()
    continuation = np.vectorize(lambda i: vocabulary[i].startswith("##"))(ids)
    assert np.all(labels[continuation & (mask == 1)] == -1)
    # First sentence "EMENTA : APELAÇÃO ..." is all O at word starts.
    sentences = read_conll(path)
    words, tags, _ = sentences[0]
    assert int((labels[0] >= 0).sum()) == len(words) or examples.skipped["truncated_sentence"] > 0
    assert [examples.label_list[t] for t in labels[0][labels[0] >= 0]] == tags[: int((labels[0] >= 0).sum())]


def test_conll_bad_tag(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Rio B-LOC\nde O\nJaneiro I-LOC\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conll:3: IOB2 tag 'I-LOC'"):
        read_conll(path, scheme="IOB2")
    assert len(read_conll(path, scheme="IOB1")) == 1


def test_harem_char_offsets(portuguese):
    folder = os.path.join(DATA, "portuguese", "harem_bertimbau")
    path = _need(os.path.join(folder, "FirstHAREM-selective-dev.json"))
    examples = read_harem(path, portuguese, classes=os.path.join(folder, "classes-selective.txt"), sequence_length=128)
    assert examples.label_list[:3] == ["O", "B-PESSOA", "I-PESSOA"]
    assert all(len(ids) <= 128 for ids in examples.token_ids)
    flat = [t for labels, best in zip(examples.labels, examples.max_context) for t, b in zip(labels, best) if b]
    begins = sum(1 for t in flat if t > 0 and examples.label_list[t].startswith("B-"))
    assert begins == 167  # every entity of the split starts exactly once (in its max-context windows)
    x, labels = next(iter(ner_examples_dataset(examples, batch_size=4, pad_to_longest=True)))
    assert labels.shape[0] == 4 and labels.shape[1] <= 128 and x["token_ids"].shape == labels.shape


def test_squad_windows_and_answer_mapping(uncased, tmp_path):
    path = _need(os.path.join(DATA, "squad", "dev-v1.1.json"))
    import json

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    small = {"data": [{"title": "t", "paragraphs": data["data"][0]["paragraphs"][:3]}], "version": "1.1"}
    small_path = tmp_path / "small.json"
    small_path.write_text(json.dumps(small), encoding="utf-8")
    features, windows, skipped = read_squad(small_path, uncased, sequence_length=64, doc_stride=32, max_query_length=20)
    assert features["token_ids"].shape[1] == 64 and len(windows) == features["token_ids"].shape[0]
    questions = {w.question_id for w in windows}
    assert len(windows) > len(questions)  # contexts longer than a window
    x, y = next(iter(squad_dataset(features, 8)))
    assert x["token_ids"].shape == (8, 64) and y["start_positions"].shape == (8,)
    # Gold positions map back to the gold answer text.
    starts, ends = features["start_positions"], features["end_positions"]
    found = 0
    for row, window in enumerate(windows):
        if starts[row] > 0:
            text = window.context[window.token_char_spans[starts[row]][0] : window.token_char_spans[ends[row]][1]]
            # Word-piece granularity: the mapped span covers the answer (e.g. "gold" in "golden").
            assert window.answers[0].lower() in text.lower(), (text, window.answers[0])
            found += 1
    assert found >= len(questions)
    # Perfect logits give back the answers.
    one_hot = lambda p: np.eye(64)[p] * 10
    from keras_bert.tasks import best_answers

    predictions = best_answers(list(one_hot(starts)), list(one_hot(ends)), windows)
    assert all(w.answers[0].lower() in predictions[w.question_id]["text"].lower() for w in windows)


def _gold_entity_counts(path, classes):
    import json

    with open(path, encoding="utf-8") as f:
        documents = json.load(f)
    return [sum(1 for e in doc.get("entities", []) if e["label"] in classes) for doc in documents]


def test_harem_overlapping_windows_max_context(portuguese):
    folder = os.path.join(DATA, "portuguese", "harem_bertimbau")
    path = _need(os.path.join(folder, "FirstHAREM-selective-dev.json"))
    classes = [c.strip() for c in open(os.path.join(folder, "classes-selective.txt")) if c.strip()]
    examples = read_harem(path, portuguese, classes=classes, sequence_length=64, doc_stride=20)
    assert len(examples.documents) == len(examples.positions) == len(examples.max_context) == len(examples)
    by_document = {}
    for row, document in enumerate(examples.documents):
        assert len(examples.positions[row]) == len(examples.max_context[row]) == len(examples.token_ids[row]) <= 64
        by_document.setdefault(document, []).append(row)
    counts = _gold_entity_counts(path, classes)
    overlapping = 0
    for document, rows in by_document.items():
        seen = {}  # document position -> (label, number of max-context windows)
        previous = None
        for row in rows:
            positions = [p for p in examples.positions[row] if p >= 0]
            assert positions == list(range(positions[0], positions[-1] + 1))
            if previous is not None:
                assert positions[0] > previous[0]
                overlapping += positions[0] <= previous[-1]
            previous = positions
            for p, label, best in zip(examples.positions[row], examples.labels[row], examples.max_context[row]):
                if label == -1:
                    assert not best or p >= 0
                    continue
                old_label, count = seen.get(p, (label, 0))
                assert old_label == label  # a piece has the same label in every window
                seen[p] = (label, count + int(best))
        assert all(count == 1 for _, count in seen.values())  # exactly one max-context window per labelled piece
        tags = [examples.label_list[seen[p][0]] for p in sorted(seen)]
        assert sum(t.startswith("B-") for t in tags) == counts[document]
    assert overlapping > 0 and len(by_document) == len(counts)


def test_harem_gold_evaluation_sees_every_entity_once(portuguese):
    from keras_bert.tasks import base
    from keras_bert.tasks.token_classification import TagTable, TokenClassification, entities

    folder = os.path.join(DATA, "portuguese", "harem_bertimbau")
    path = _need(os.path.join(folder, "MiniHAREM-selective.json"))
    classes = [c.strip() for c in open(os.path.join(folder, "classes-selective.txt")) if c.strip()]
    examples = read_harem(path, portuguese, classes=classes, sequence_length=512, doc_stride=128)
    assert any(len(ids) == 512 for ids in examples.token_ids) and len(set(examples.documents)) < len(examples)
    outputs = [np.eye(len(examples.label_list))[np.maximum(labels, 0)] for labels in examples.labels]
    data = base.TaskData(None, len(examples), examples, list(examples.label_list), path)
    metrics, rows = TokenClassification().evaluate(data, outputs)
    assert metrics["entity_precision"] == metrics["entity_recall"] == metrics["entity_f1"] == 1.0
    table = TagTable(examples.label_list)
    assert len(rows) == len(_gold_entity_counts(path, classes))  # one row per document
    gold = entities([true_tags for _, _, true_tags, _ in rows], table)
    assert len(gold) == sum(_gold_entity_counts(path, classes))  # 3,018 in MiniHAREM selective
    assert entities([predicted for _, _, _, predicted in rows], table) == gold
