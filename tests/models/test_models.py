import keras
import numpy as np
import pytest

import keras_bert
from tests.test_case import (assert_all_close, random_inputs, run_model_saving_test, run_serialization_test,
                             tiny_config, to_numpy)


def pretraining_batch(batch=4, seq=8, vocab_size=50, predictions=3, seed=0):
    rng = np.random.default_rng(seed)
    x = random_inputs(batch, seq, vocab_size, seed=seed, min_length=predictions + 1)
    positions = np.stack([rng.choice(int(m.sum()), predictions, replace=False) for m in x["padding_mask"]])
    x["masked_positions"] = positions.astype("int32")
    y = {"mlm_labels": rng.integers(5, vocab_size, (batch, predictions)).astype("int32"),
         "mlm_weights": np.ones((batch, predictions), "float32"),
         "nsp_labels": rng.integers(0, 2, batch).astype("int32")}
    y["mlm_weights"][-1, -1] = 0.0
    return x, y


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_encoder_outputs_serialization_and_saving(pre_layer_norm, tmp_path):
    encoder = keras_bert.BertEncoder(tiny_config(pre_layer_norm=pre_layer_norm, hidden_act="gelu_new"))
    x = random_inputs()
    out = encoder(x)
    assert tuple(out["sequence_output"].shape) == (3, 7, 8)
    assert tuple(out["pooled_output"].shape) == (3, 8)
    restored = run_serialization_test(encoder)
    assert restored.config == encoder.config
    run_model_saving_test(encoder, x, tmp_path)


def test_encoder_accepts_preset_name_and_returns_all_layers():
    encoder = keras_bert.BertEncoder("bert_tiny", output_all_layers=True)
    out = encoder(random_inputs(vocab_size=1000))
    assert len(out["layer_outputs"]) == 2
    assert_all_close(out["layer_outputs"][-1], out["sequence_output"])


def test_padding_never_changes_real_positions():
    encoder = keras_bert.BertEncoder(tiny_config())
    rng = np.random.default_rng(1)
    for trial in range(3):
        x = random_inputs(batch=4, seq=6, seed=trial)
        base = to_numpy(encoder(x))
        extra = int(rng.integers(1, 9))
        padded = {k: np.pad(v, ((0, 0), (0, extra))) for k, v in x.items()}
        # Garbage in padded slots must not matter either.
        padded["token_ids"][:, 6:] = rng.integers(1, 50, (4, extra))
        padded["segment_ids"][:, 6:] = 1
        out = to_numpy(encoder(padded))
        for b in range(4):
            n = int(x["padding_mask"][b].sum())
            np.testing.assert_allclose(out["sequence_output"][b, :n], base["sequence_output"][b, :n], atol=1e-5)
        np.testing.assert_allclose(out["pooled_output"], base["pooled_output"], atol=1e-5)


def test_pretrainer_outputs_only_masked_positions_and_round_trips(tmp_path):
    encoder = keras_bert.BertEncoder(tiny_config())
    pretrainer = keras_bert.BertPretrainer(encoder)
    assert pretrainer.encoder is encoder
    x, _ = pretraining_batch()
    out = pretrainer(x)
    assert tuple(out["mlm_logits"].shape) == (4, 3, 50)
    assert tuple(out["nsp_logits"].shape) == (4, 2)
    # The logits at a masked position equal the head applied to that position alone.
    seq = encoder({k: x[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"]
    single = pretrainer.mlm_head(seq, x["masked_positions"][:, :1])
    assert_all_close(single, out["mlm_logits"][:, :1], atol=1e-5)
    restored = run_model_saving_test(pretrainer, x, tmp_path)
    assert restored.mlm_head.output_matrix is restored.encoder.token_embedding.embeddings


def test_mlm_output_matrix_is_the_token_embedding():
    encoder = keras_bert.BertEncoder(tiny_config())
    pretrainer = keras_bert.BertPretrainer(encoder)
    assert pretrainer.mlm_head.output_matrix is encoder.token_embedding.embeddings
    vocab_shaped = [w for w in pretrainer.weights if tuple(w.shape) == (50, 8)]
    assert len(vocab_shaped) == 1, "there must be exactly one [vocab, hidden] matrix"

    x, y = pretraining_batch()
    x["token_ids"] = np.minimum(x["token_ids"], 20)  # ids >= 21 never appear in the input
    y["mlm_labels"][:] = 45  # ... but are predicted
    before = np.array(encoder.token_embedding.embeddings)
    pretrainer.compile(optimizer=keras.optimizers.SGD(0.5))
    pretrainer.train_on_batch(x, y)
    after = np.array(encoder.token_embedding.embeddings)
    # Rows of ids absent from the input can only change through the tied output projection.
    assert not np.allclose(before[45], after[45])
    assert np.array_equal(np.asarray(pretrainer.mlm_head.output_matrix), after)


def test_pretrainer_fit_reports_bert_metrics_and_learns():
    pretrainer = keras_bert.BertPretrainer(keras_bert.BertEncoder(tiny_config()))
    pretrainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y = pretraining_batch()
    history = pretrainer.fit(x, y, batch_size=4, epochs=30, verbose=0).history
    assert {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"} <= set(history)
    assert history["loss"][-1] < history["loss"][0] * 0.5
    assert history["mlm_accuracy"][-1] > history["mlm_accuracy"][0]
    # loss = weighted-mean MLM CE + NSP CE, as reported by the metrics.
    np.testing.assert_allclose(history["loss"][-1], history["mlm_loss"][-1] + history["nsp_loss"][-1], rtol=1e-4)
    evaluation = pretrainer.evaluate(x, y, verbose=0, return_dict=True)
    assert evaluation["mlm_accuracy"] >= history["mlm_accuracy"][0]


def test_mlm_accuracy_is_the_weighted_argmax_accuracy():
    """`mlm_accuracy` (a max and a gather, no argmax) equals numpy's argmax accuracy over weighted positions."""
    pretrainer = keras_bert.BertPretrainer(keras_bert.BertEncoder(tiny_config(initializer_range=0.5)))
    pretrainer.compile(optimizer="adam")
    x, y = pretraining_batch(batch=8, predictions=4, seed=3)
    logits = to_numpy(pretrainer(x))["mlm_logits"]
    # Make about half of the labels right, so that the metric has both outcomes to count.
    y["mlm_labels"][::2] = logits.argmax(-1)[::2]
    y["mlm_weights"][1, :2] = 0.0
    correct = (logits.argmax(-1) == y["mlm_labels"]).astype("float32")
    expected = (correct * y["mlm_weights"]).sum() / y["mlm_weights"].sum()
    assert 0.3 < expected < 0.9
    got = pretrainer.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["mlm_accuracy"]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_top1_correct_matches_argmax():
    from keras_bert.models.losses import top1_correct

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 40)).astype("float32")
    labels = rng.integers(0, 40, (3, 5)).astype("int32")
    labels[0] = logits[0].argmax(-1)
    got = to_numpy(top1_correct(keras.ops.convert_to_tensor(labels), keras.ops.convert_to_tensor(logits)))
    np.testing.assert_array_equal(got, (logits.argmax(-1) == labels).astype("float32"))


def test_pretrainer_rejects_wrong_targets():
    pretrainer = keras_bert.BertPretrainer(keras_bert.BertEncoder(tiny_config()))
    pretrainer.compile(optimizer="adam")
    x, y = pretraining_batch()
    del y["mlm_weights"]
    with pytest.raises(ValueError, match="mlm_weights"):
        pretrainer.train_on_batch(x, y)


TASKS = [
    (keras_bert.BertClassifier, dict(num_classes=3, labels=["a", "b", "c"], dropout=0.2),
     lambda rng, x: rng.integers(0, 3, 3).astype("int32"), (3, 3)),
    (keras_bert.BertRegressor, dict(dropout=0.0), lambda rng, x: rng.normal(size=3).astype("float32"), (3,)),
    (keras_bert.BertTokenClassifier, dict(num_classes=4, labels=["O", "B-X", "I-X", "B-Y"]),
     lambda rng, x: np.where(x["padding_mask"] > 0, rng.integers(0, 4, (3, 7)), -1).astype("int32"), (3, 7, 4)),
    (keras_bert.BertQuestionAnswerer, {},
     lambda rng, x: {"start_positions": np.array([1, 2, 0], "int32"), "end_positions": np.array([2, 2, 0], "int32")},
     {"end_logits": (3, 7), "start_logits": (3, 7)}),
]


@pytest.mark.parametrize("cls,kwargs,make_targets,shape", TASKS, ids=[t[0].__name__ for t in TASKS])
def test_task_models_fit_serialize_and_save(cls, kwargs, make_targets, shape, tmp_path):
    encoder = keras_bert.BertEncoder(tiny_config())
    model = cls(encoder, **kwargs)
    assert model.encoder is encoder
    x = random_inputs()
    out = model(x)
    assert keras.tree.map_structure(lambda t: tuple(t.shape), out) == shape
    y = make_targets(np.random.default_rng(0), x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.fit(x, y, batch_size=3, epochs=2, verbose=0).history
    assert np.isfinite(logs["loss"]).all()
    restored = run_serialization_test(model)
    assert restored.get_config() == model.get_config()
    run_model_saving_test(model, x, tmp_path)


def test_token_classifier_loss_ignores_unlabeled_positions():
    model = keras_bert.BertTokenClassifier(keras_bert.BertEncoder(tiny_config()), num_classes=4)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x = random_inputs()
    labels = np.full((3, 7), -1, "int32")
    labels[:, 1] = 2
    loss = model.evaluate(x, labels, verbose=0, return_dict=True)["loss"]
    logits = to_numpy(model(x))[:, 1]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[:, 2].mean(), rtol=1e-4)


def test_qa_logits_never_point_at_padding():
    model = keras_bert.BertQuestionAnswerer(keras_bert.BertEncoder(tiny_config()))
    x = random_inputs()
    out = to_numpy(model(x))
    assert (out["start_logits"][x["padding_mask"] == 0] < -1e8).all()


@pytest.mark.parametrize("pooling,normalize", [("mean", False), ("cls", True)])
def test_embedder(pooling, normalize, tmp_path):
    encoder = keras_bert.BertEncoder(tiny_config())
    embedder = keras_bert.BertEmbedder(encoder, pooling=pooling, normalize=normalize)
    x = random_inputs()
    emb = to_numpy(embedder(x))
    seq = to_numpy(encoder(x))["sequence_output"]
    if pooling == "mean":
        m = x["padding_mask"][..., None]
        expected = (seq * m).sum(1) / m.sum(1)
    else:
        expected = seq[:, 0]
        expected = expected / np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(emb, expected, atol=1e-5)
    run_serialization_test(embedder)
    run_model_saving_test(embedder, x, tmp_path)


def test_save_and_load_directory(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(45)]) + "\n")
    model = keras_bert.BertClassifier(keras_bert.BertEncoder(tiny_config()), num_classes=2, labels=["neg", "pos"])
    keras_bert.save(model, tmp_path / "model", vocab_file=str(vocab), lowercase=True)
    restored = keras_bert.load(tmp_path / "model")
    assert isinstance(restored, keras_bert.BertClassifier) and restored.labels == ["neg", "pos"]
    x = random_inputs()
    assert_all_close(restored(x), model(x))
    settings = keras_bert.load_tokenizer_settings(tmp_path / "model")
    assert settings["lowercase"] is True and settings["vocab_file"].endswith("vocab.txt")
    assert keras_bert.BertConfig.from_json(str(tmp_path / "model" / "config.json")) == model.encoder.config
    with pytest.raises(FileNotFoundError, match="model.keras is missing"):
        keras_bert.load(tmp_path)


def test_loading_refuses_lambda_layers(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        keras_bert.load(tmp_path / "model.keras")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    try:
        encoder = keras_bert.BertEncoder(tiny_config())
        pretrainer = keras_bert.BertPretrainer(encoder)
        block = encoder.transformer_blocks[0]
        assert block.attention.qkv.compute_dtype == policy.split("_")[1]
        assert block.attention_layer_norm.compute_dtype == "float32"
        # Variables stay float32.
        assert keras.backend.standardize_dtype(encoder.token_embedding.embeddings.dtype) == "float32"
        x, y = pretraining_batch()
        out = pretrainer(x)
        assert [keras.backend.standardize_dtype(out[k].dtype) for k in ("mlm_logits", "nsp_logits")] == ["float32"] * 2
        pretrainer.compile(optimizer=keras.optimizers.Adam(1e-3))
        if policy == "mixed_float16":
            assert isinstance(pretrainer.optimizer, keras.optimizers.LossScaleOptimizer)
        logs = pretrainer.fit(x, y, epochs=2, verbose=0).history
        assert np.isfinite(logs["loss"]).all()
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_sentence_heads_read_the_encoders_pooled_output(pre_layer_norm):
    """Classifier and regressor run the last block at [CLS] only, with the same values as the full encoder."""
    encoder = keras_bert.BertEncoder(tiny_config(pre_layer_norm=pre_layer_norm, initializer_range=0.5))
    x = random_inputs(batch=4, seq=9)
    pooled = encoder(x)["pooled_output"]
    classifier = keras_bert.BertClassifier(encoder, num_classes=3, dropout=0.0)
    assert_all_close(classifier(x), classifier.get_layer("logits")(pooled), atol=1e-5)
    regressor = keras_bert.BertRegressor(encoder, dropout=0.0)
    assert_all_close(regressor(x), to_numpy(regressor.get_layer("score")(pooled)).reshape(-1), atol=1e-5)
