"""The `summarization` task on a tiny config: chunking across windows, readers, ROUGE, selection, text-in
fit/predict/save/load, and the export (TF1 loader, TF Serving ops, REST + gRPC) against the Keras model."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_bert
from keras_bert.data.errors import DataError
from keras_bert.tasks import summarization as S
from tests.test_case import save_tiny_init

ACLSUM = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "aclsum")
WINDOW = 32

# Documents of real sentences, long enough for several 32-piece windows each.
SENTENCES = [
    "The model reads every sentence of the paper .",
    "Long documents are split into windows of whole sentences .",
    "Each window is encoded by the same encoder .",
    "A sentence longer than the window is cut to the window , and that is the only cut anywhere in the document "
    "even when it goes on and on and on for many more words than fit .",
    "Inter-sentence layers then score all sentences together .",
    "We report ROUGE against the reference summaries .",
    "The results improve over the lead baseline .",
]
DOCUMENTS = ["\n".join(SENTENCES), " ".join(SENTENCES[:3]), "\n".join(SENTENCES[3:] + SENTENCES[:2])]


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    return save_tiny_init(tmp_path_factory.mktemp("summarizer_init"))


@pytest.fixture(scope="module")
def summarizer(init_dir):
    # The ACLSum recipe's sentence vectors (mean pooling) and loss (weighted positives).
    keras.utils.set_random_seed(0)
    model = keras_bert.BertExtractiveSummarizer.from_pretrained(init_dir, sequence_length=WINDOW,
                                                                aspects=["challenge", "outcome"], pooling="mean",
                                                                positive_weight=3.0)
    return model


def test_split_sentences_newlines_and_punctuation():
    assert S.split_sentences("One here.\nTwo. Three\n\n  Four  ") == ["One here.", "Two. Three", "Four"]
    assert S.split_sentences("It works. We tested it! Did it (really)? Yes 3 times.") == [
        "It works.", "We tested it!", "Did it (really)?", "Yes 3 times."]
    assert S.split_sentences("e.g. this stays one sentence.") == ["e.g. this stays one sentence."]


def test_chunks_hold_whole_sentences_within_the_window(summarizer):
    tokenizer = summarizer.preprocessor.tokenizer
    pieces = S.sentence_pieces(tokenizer, S.split_sentences(DOCUMENTS[0]), WINDOW)
    assert max(len(p) for p in pieces) == WINDOW  # The long sentence is cut to the window, no more.
    features = S.document_features(pieces, WINDOW)
    chunks = features["token_ids"]
    assert chunks.shape[0] >= 3 and chunks.shape[1] <= WINDOW
    # Every sentence's pieces sit whole in one chunk, starting at its [CLS], in order; segments alternate.
    for i, p in enumerate(pieces):
        chunk, start = features["sentence_chunk"][i], features["sentence_position"][i]
        assert list(chunks[chunk, start:start + len(p)]) == p
        assert set(features["segment_ids"][chunk, start:start + len(p)]) == {i % 2}
    assert sum(len(p) for p in pieces) == int(features["padding_mask"].sum())  # Nothing dropped.
    # Greedy: a chunk ends only where the next sentence would not fit.
    ends = {}
    for i, p in enumerate(pieces):
        ends[features["sentence_chunk"][i]] = features["sentence_position"][i] + len(p)
    for i in range(1, len(pieces)):
        if features["sentence_chunk"][i] != features["sentence_chunk"][i - 1]:
            assert ends[features["sentence_chunk"][i - 1]] + len(pieces[i]) > WINDOW
    truncated = S.document_features(pieces, WINDOW, max_chunks=1)
    assert truncated["token_ids"].shape[0] == 1 and 0 < truncated["sentence_mask"].sum() < len(pieces)


def _encoded_batch(summarizer, documents, max_chunks=None):
    """Padded model inputs of `documents` and the encoder's sequence output `[docs, chunks, seq, hidden]`."""
    features = S.encode_documents(summarizer.preprocessor.tokenizer, documents, WINDOW, max_chunks)
    batch = next(iter(S.features_dataset(features, batch_size=len(features))))
    batch = {k: np.asarray(v) for k, v in batch.items()}
    docs, chunks, seq = batch["token_ids"].shape
    sequence = summarizer.encoder({k: batch[k].reshape(docs * chunks, seq) for k in S.CHUNK_INPUTS})
    return features, batch, np.asarray(sequence["sequence_output"]).reshape(docs, chunks, seq, -1)


def _vectors(pooling, batch, sequence):
    from keras_bert.models.summarizer import SentenceVectors

    docs, chunks, seq, hidden = sequence.shape
    layer = SentenceVectors(pooling)
    return np.asarray(layer(sequence.reshape(docs * chunks, seq, hidden), batch["token_ids"],
                            batch["sentence_chunk"], batch["sentence_position"], batch["sentence_mask"],
                            batch["padding_mask"]))


def test_sentence_vectors_are_the_encoder_cls_states_of_their_own_chunk(summarizer):
    documents = [S.split_sentences(d) for d in DOCUMENTS]
    features, batch, sequence = _encoded_batch(summarizer, documents)
    vectors = _vectors("cls", batch, sequence)
    for b, f in enumerate(features):
        expected = sequence[b, f["sentence_chunk"], f["sentence_position"]]
        np.testing.assert_allclose(vectors[b, :len(f["sentence_mask"])], expected, atol=1e-6)


@pytest.mark.parametrize("max_chunks", [None, 1])
def test_mean_sentence_vectors_average_each_sentences_own_pieces(summarizer, max_chunks):
    # Documents of different lengths in one padded batch; with max_chunks=1 the later sentences are masked.
    documents = [S.split_sentences(d) for d in DOCUMENTS]
    features, batch, sequence = _encoded_batch(summarizer, documents, max_chunks)
    vectors = _vectors("mean", batch, sequence)
    pieces = [S.sentence_pieces(summarizer.preprocessor.tokenizer, d, WINDOW) for d in documents]
    for b, f in enumerate(features):
        for i, p in enumerate(pieces[b]):
            if not f["sentence_mask"][i]:
                np.testing.assert_allclose(vectors[b, i], 0.0)
                continue
            chunk, start = f["sentence_chunk"][i], f["sentence_position"][i]
            expected = sequence[b, chunk, start:start + len(p)].mean(axis=0)
            np.testing.assert_allclose(vectors[b, i], expected, rtol=1e-5, atol=1e-5)
        assert not vectors[b, len(pieces[b]):].any()  # padded sentence slots
    truncated = sum(int(f["sentence_mask"].sum()) < len(f["sentence_mask"]) for f in features)
    assert truncated > 0 if max_chunks else truncated == 0


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sentence_vectors_layer(pooling):
    from keras_bert.models.summarizer import SentenceVectors
    from tests.test_case import run_layer_test

    rng = np.random.default_rng(0)
    padding = np.array([[[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], [[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]]], "int32")
    call_args = [rng.normal(size=(4, 6, 8)).astype("float32"), padding, np.array([[0, 0, 1], [0, 0, 0]], "int32"),
                 np.array([[0, 3, 0], [0, 2, 0]], "int32"), np.array([[1, 1, 1], [1, 1, 0]], "int32"), padding]
    run_layer_test(SentenceVectors(pooling), call_args, (2, 3, 8), expected_num_trainable_weights=0,
                   run_training=False)


def test_model_options_config_freezing_and_weighted_loss(init_dir):
    from keras_bert.models.summarizer import SentenceVectors
    from keras_bert.tasks.preprocessing import load_pretrained

    encoder, _, _ = load_pretrained(init_dir)
    blocks = encoder.transformer_blocks
    top = len(blocks) - 1  # all blocks but the first train
    model = keras_bert.BertExtractiveSummarizer(encoder, aspects=["a", "b"], pooling="mean", positive_weight=2.5,
                                                trainable_encoder_layers=top)
    config = model.get_config()
    assert (config["pooling"], config["positive_weight"], config["trainable_encoder_layers"]) == ("mean", 2.5, top)
    restored = keras_bert.BertExtractiveSummarizer.from_config(config)
    assert restored.get_layer("sentence_vectors").pooling == "mean"
    # The embeddings and the lowest block are frozen; the blocks above, inter-sentence layers and heads train.
    assert not encoder.embeddings.trainable and not blocks[0].trainable and all(b.trainable for b in blocks[1:])
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in encoder.embeddings.weights + blocks[0].weights)
    assert all(id(v) in trainable for b in blocks[1:] for v in b.trainable_weights)
    assert all(id(v) in trainable for v in model.get_layer("inter_sentence_block_0").trainable_weights)
    assert {id(v) for v in restored.encoder.embeddings.weights}.isdisjoint({id(v) for v in
                                                                          restored.trainable_variables})
    # Positives weigh positive_weight in the masked BCE (mean over real sentences, then over aspects).
    y = {"a": np.array([[1.0, 0.0, -1.0]]), "b": np.array([[0.0, 1.0, 1.0]])}
    p = {"a": np.array([[0.7, 0.2, 0.5]]), "b": np.array([[0.4, 0.9, 0.6]])}

    def bce(labels, scores, weight):
        return -np.mean([weight * np.log(s) if t == 1 else np.log(1 - s) for t, s in zip(labels, scores) if t >= 0])

    expected = (bce([1, 0, -1], [0.7, 0.2, 0.5], 2.5) + bce([0, 1, 1], [0.4, 0.9, 0.6], 2.5)) / 2
    assert float(model.compute_loss(y=y, y_pred=p)) == pytest.approx(expected, rel=1e-5)
    plain = keras_bert.BertExtractiveSummarizer(encoder, aspects=["a", "b"])
    assert float(plain.compute_loss(y=y, y_pred=p)) < float(model.compute_loss(y=y, y_pred=p))
    with pytest.raises(ValueError, match="pooling must be one of"):
        SentenceVectors("max")
    with pytest.raises(ValueError, match="trainable_encoder_layers"):
        keras_bert.BertExtractiveSummarizer(encoder, trainable_encoder_layers=-1)


def test_graph_chunking_and_features_match_python(summarizer):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=(4, 30))
    counts = [30, 17, 1, 0]
    mask = np.arange(30)[None, :] < np.array(counts)[:, None]
    chunk, start = (np.asarray(t) for t in S.graph_chunks(tf.constant(lengths), tf.constant(mask), 16))
    for b, n in enumerate(counts):
        slots = S.chunk_sentences(list(lengths[b, :n]), 16)
        assert [(int(c), int(s)) for c, s in zip(chunk[b, :n], start[b, :n])] == slots
    documents = [S.split_sentences(d) for d in DOCUMENTS] + [[]]
    ragged = tf.ragged.constant(documents, dtype=tf.string)
    graph = S.graph_features(summarizer.preprocessor.tokenizer, ragged, WINDOW)
    python = S.encode_documents(summarizer.preprocessor.tokenizer, documents, WINDOW)
    for b, features in enumerate(python):
        c, w = features["token_ids"].shape
        for name in S.CHUNK_INPUTS:
            got = np.asarray(graph[name])[b]
            np.testing.assert_array_equal(got[:c, :w], features[name])
            assert not got[c:].any() and not got[:, w:].any()
        n = len(documents[b])
        for name in S.SENTENCE_INPUTS:
            np.testing.assert_array_equal(np.asarray(graph[name])[b, :n], features[name][:n])


def test_selection_top_k_threshold_trigram_blocking_and_graph_agree():
    sentences = ["the cat sat on the mat", "a cat sat on the mat too", "dogs bark", "birds sing loudly", "x"]
    scores = [0.9, 0.8, 0.1, 0.7, 0.95]
    assert S.select(scores, sentences, 3) == [0, 3, 4]  # 1 shares "sat on the" with 0.
    assert S.select(scores, sentences, 3, trigram_blocking=False) == [0, 1, 4]
    assert S.select(scores, sentences, 5, threshold=0.75, trigram_blocking=False) == [0, 1, 4]
    rng = np.random.default_rng(1)
    words = ["a", "b", "c", "the", "cat"]
    docs = [[" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(n)] for n in (9, 4, 1, 6)]
    random_scores = [list(rng.random(len(d))) for d in docs]
    width = max(len(d) for d in docs)
    dense_scores = np.zeros((len(docs), width), np.float32)
    dense_text = np.full((len(docs), width), "", object)
    mask = np.zeros((len(docs), width), bool)
    for b, (d, s) in enumerate(zip(docs, random_scores)):
        dense_scores[b, :len(d)] = s
        dense_text[b, :len(d)] = d
        mask[b, :len(d)] = True
    for threshold in (None, 0.5):
        for blocking in (True, False):
            indices, summary = S.graph_select(tf.constant(dense_scores), tf.constant(dense_text.astype(str)),
                                              tf.constant(mask), 3, threshold, blocking)
            for b, (d, s) in enumerate(zip(docs, random_scores)):
                expected = S.select(np.float32(s).tolist(), d, 3, threshold, blocking)
                assert [int(i) for i in np.asarray(indices)[b] if i >= 0] == expected
                assert np.asarray(summary)[b].decode() == "\n".join(d[i] for i in expected)


def _doc(labels):
    return S.Document("d", [f"sentence {i}" for i in range(len(labels))], {"x": labels}, {"x": None})


def test_sentence_metrics_classify_every_sentence_at_the_threshold():
    documents = [_doc([1, 0, 1, 0]), _doc([0, 1])]
    scores = [{"x": [0.9, 0.6, 0.4, 0.1]}, {"x": [0.7, 0.55]}]
    # At 0.5: predicted 0.9, 0.6 | 0.7, 0.55; true positives 0.9 and 0.55 (2 of 4 predicted, 2 of 3 gold).
    m = S.sentence_metrics(documents, scores, ["x"], 0.5)
    assert (m["x_sentence_precision"], m["x_sentence_recall"]) == pytest.approx((50.0, 200 / 3))
    assert m["x_sentence_f1"] == pytest.approx(100 * 2 * 2 / (4 + 3)) == m["sentence_f1"]
    assert m["x_sentence_threshold"] == 0.5
    # A sentence the model did not score (a truncated input) is never predicted but still counts as gold:
    # the second document's 0.55 is lost, 1 of 3 predicted and 1 of 3 gold.
    m = S.sentence_metrics(documents, scores, ["x"], {"x": 0.5}, scored=[[True] * 4, [True, False]])
    assert [m[f"x_sentence_{n}"] for n in ("precision", "recall", "f1")] == pytest.approx([100 / 3] * 3)
    # The top-k selection's own P/R/F1 is labelled apart (selection_*), from the selected indices only.
    s = S.score_selections(documents, [{"x": [0]}, {"x": [1]}], ["x"])
    assert (s["x_selection_precision"], s["x_selection_recall"]) == pytest.approx((100.0, 200 / 3))
    assert "x_sentence_f1" not in s


def test_choose_threshold_maximises_pooled_sentence_f1():
    labels = [[1, 0, 1], [0, 1, 0, 0]]
    scores = [[0.9, 0.8, 0.7], [0.6, 0.3, 0.2, 0.1]]
    # Cuts (predict >= cut) over the 7 pooled sentences, 3 gold: 0.9 -> F1 2*1/(1+3) = 0.5; 0.8 -> 2/5;
    # 0.7 -> 4/6; 0.6 -> 4/7; 0.3 -> 6/8 = 0.75 (best); 0.2 -> 6/9; 0.1 -> 6/10. Halfway to the next: 0.25.
    threshold, f1 = S.choose_threshold(scores, labels)
    assert threshold == pytest.approx(0.25) and f1 == pytest.approx(75.0)
    documents = [_doc(row) for row in labels]
    m = S.sentence_metrics(documents, [{"x": s} for s in scores], ["x"], threshold)
    assert (m["x_sentence_precision"], m["x_sentence_recall"], m["x_sentence_f1"]) == pytest.approx((60, 100, 75))
    # Truncated: only the first sentence of the second document scored; its later highlight still counts in
    # the recall. Cuts 0.9 -> 0.5, 0.8 -> 0.4, 0.7 -> 4/6 (best), 0.6 -> 4/7; halfway to 0.6: 0.65.
    threshold, f1 = S.choose_threshold(scores, labels, scored=[[True] * 3, [True, False, False, False]])
    assert threshold == pytest.approx(0.65) and f1 == pytest.approx(200 / 3)
    # A tie goes to the higher cut: 0.9 and 0.6 both give 2/3 here (2 gold); halfway from 0.9 to 0.8.
    assert S.choose_threshold([[0.9, 0.8, 0.7, 0.6]], [[1, 0, 0, 1]]) == pytest.approx((0.85, 200 / 3))


def test_rouge_is_rouge_score_with_stemming_and_lsum_over_sentences():
    from rouge_score import rouge_scorer

    reference = "The models were trained on papers. They summarize them."
    summary = ["The model trains on a paper .", "It summarizes papers ."]
    expected = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True).score(
        "The models were trained on papers.\nThey summarize them.", "\n".join(summary))
    got = S.rouge(summary, reference)
    for name in S.ROUGE_TYPES:
        assert got[name] == pytest.approx(100 * expected[name].fmeasure)
    assert got["rouge1"] > S.rouge(summary[:1], reference)["rouge1"] * 0  # computed, not constant
    plain = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False).score(reference, " ".join(summary))
    assert got["rouge1"] > 100 * plain["rouge1"].fmeasure  # stemming matches trained/trains, papers/paper


def test_oracle_labels_pick_the_sentences_that_cover_the_reference():
    sentences = ["we thank the reviewers", "our parser improves accuracy on long sentences", "this is unrelated",
                 "it also runs faster"]
    labels = S.oracle_labels(sentences, "The parser improves accuracy and runs faster .", most=3)
    assert labels == [0, 1, 0, 1]


def _write(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


@pytest.mark.parametrize("record, message", [
    ("{not json", ":2: invalid JSON"),
    ({"sentences": ["a", 3], "labels": [0, 1]}, ":2: field 'sentences' must be a list of strings"),
    ({"sentences": ["a", "b"], "labels": [0]}, ":2: field 'labels' has 1 labels for 2 sentences"),
    ({"sentences": ["a", "b"], "labels": [0, 2]}, ":2: field 'labels' must be a list of 0/1 labels"),
    ({"sentences": ["a"]}, ":2: field 'labels' or 'summary' is needed"),
    ({"text": 5, "summary": "x"}, ":2: field 'text' must be a str"),
    ({"title": "no content"}, ":2: a record needs 'sentences'"),
    ({"sentences": {"abstract": ["a"]}, "highlights": {"challenge": {"abstract": [0, 1]}}},
     ":2: field 'highlights.challenge.abstract' has 2 labels for 1 sentences"),
    ({"sentences": {"abstract": ["a"]}, "highlights": {"outcome": {"abstract": [1]}}},
     ":2: aspects ['outcome'] differ from the first record's ['challenge']"),
])
def test_bad_records_name_file_line_and_field(tmp_path, record, message):
    first = ({"sentences": {"abstract": ["a"]}, "highlights": {"challenge": {"abstract": [1]}}}
             if "highlights" in str(record) else {"sentences": ["a"], "labels": [1]})
    path = _write(tmp_path / "bad.jsonl", [first, record])
    with pytest.raises(DataError) as error:
        S.read_documents(path)
    assert str(error.value).startswith(path) and message in str(error.value), str(error.value)


def test_generic_formats_give_labels_and_references(tmp_path):
    path = _write(tmp_path / "docs.jsonl", [
        {"sentences": ["a b c", "d e f"], "labels": [0, 1], "summary": "d e f"},
        {"text": "We build a parser. It is fast. Thanks to all.", "summary": "A fast parser."},
    ])
    documents = S.read_documents(path)
    assert documents[0].labels == {"summary": [0, 1]} and documents[0].references == {"summary": "d e f"}
    assert documents[1].sentences == ["We build a parser.", "It is fast.", "Thanks to all."]
    assert documents[1].labels["summary"][2] == 0 and sum(documents[1].labels["summary"]) >= 1


def test_aclsum_reader_aspects_and_sections():
    path = os.path.join(ACLSUM, "val.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path} (see ../shared/data/README.md)")
    documents = S.read_documents(path)
    assert len(documents) == 50 and sum(len(d.sentences) for d in documents) == 1978
    assert list(documents[0].labels) == ["approach", "challenge", "outcome"]
    assert sum(sum(d.labels["challenge"]) for d in documents) == 196
    abstracts = S.read_documents(path, aspects=["outcome"], sections=["abstract"], limit=3)
    with open(path, encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert abstracts[0].sentences == first["sentences"]["abstract"]
    assert abstracts[0].labels == {"outcome": first["highlights"]["outcome"]["abstract"]}
    assert abstracts[0].references == {"outcome": first["summary"]["outcome"]}


def _labels(documents, aspects):
    rows = []
    for d in documents:
        n = len(S.split_sentences(d))
        rows.append({a: [int(i % (k + 2) == 0) for i in range(n)] for k, a in enumerate(aspects)})
    return rows


def test_text_in_fit_predict_save_load(summarizer, tmp_path):
    model = summarizer
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    labels = _labels(DOCUMENTS, model.aspects)
    before = model.summarize(DOCUMENTS)
    history = model.fit(DOCUMENTS, labels, batch_size=2, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    outputs = model.predict(DOCUMENTS)
    assert [o["challenge"]["scores"] for o in outputs] != [b["challenge"]["scores"] for b in before]
    for document, output in zip(DOCUMENTS, outputs):
        sentences = S.split_sentences(document)
        for aspect in model.aspects:
            row = output[aspect]
            assert len(row["scores"]) == len(sentences)
            assert row["indices"] == S.select(row["scores"], sentences, 3)
            assert row["summary"] == "\n".join(sentences[i] for i in row["indices"])
    directory = str(tmp_path / "summarizer")
    keras_bert.save(model, directory)
    restored = keras_bert.load(directory)
    assert type(restored) is keras_bert.BertExtractiveSummarizer and restored.aspects == model.aspects
    assert restored.predict(DOCUMENTS) == outputs


def test_unsupervised_mode_same_format(init_dir):
    embedder = keras_bert.BertEmbedder.from_pretrained(init_dir, sequence_length=WINDOW)
    for method in ("kmeans", "centroid"):
        rows = S.unsupervised_summarize(embedder, DOCUMENTS, top_k=2, method=method)
        for document, row in zip(DOCUMENTS, rows):
            sentences = S.split_sentences(document)
            assert set(row) == {"summary"} and len(row["summary"]["indices"]) == min(2, len(sentences))
            assert row["summary"]["indices"] == sorted(row["summary"]["indices"])
            assert row["summary"]["summary"] == "\n".join(sentences[i] for i in row["summary"]["indices"])


def test_export_round_trip_agrees_with_keras_and_uses_serving_ops(summarizer, tmp_path):
    from keras_bert.export.ops import export_allowlist, saved_model_ops
    from serving import export
    from tests.export.helpers import Tf1Model

    model_dir = str(tmp_path / "model")
    keras_bert.save(summarizer, model_dir)
    out = tmp_path / "models" / "summarizer"
    assert export.main(["--model", model_dir, "--task", "summarization", "--out", str(out),
                        "--max-length", str(WINDOW)]) == 0
    path = str(out / "1")
    assert not saved_model_ops(path) - export_allowlist(), sorted(saved_model_ops(path) - export_allowlist())
    texts = DOCUMENTS + [""]
    expected = summarizer.summarize(texts)
    served = Tf1Model(path)
    outputs = served.run("serving_default", {"text": texts})
    for b, row in enumerate(expected):
        for aspect in summarizer.aspects:
            indices = [int(i) for i in outputs[f"{aspect}_indices"][b] if i >= 0]
            assert indices == row[aspect]["indices"]
            assert outputs[f"{aspect}_summary"][b].decode() == row[aspect]["summary"]
            n = int(outputs["num_sentences"][b])
            np.testing.assert_allclose(outputs[f"{aspect}_scores"][b, :n], row[aspect]["scores"], atol=1e-5)
    served.close()
    # Served by serving.server over REST and gRPC.
    from serving import client
    from serving.testing import ServerProcess

    server = ServerProcess(["--model_name", "summarizer", "--model_base_path", str(tmp_path / "models" / "summarizer")],
                           str(tmp_path / "server.log"))
    try:
        server.wait_until_available("summarizer")
        rest = client.rest_predict(server.rest_url, "summarizer", inputs={"text": texts})["outputs"]
        grpc = client.grpc_predict(server.grpc_target, "summarizer", {"text": texts})
        for b, row in enumerate(expected):
            assert rest["challenge_summary"][b] == row["challenge"]["summary"]
            assert [i for i in rest["outcome_indices"][b] if i >= 0] == row["outcome"]["indices"]
            assert [int(i) for i in grpc["challenge_indices"][b] if i >= 0] == row["challenge"]["indices"]
    finally:
        server.stop()
