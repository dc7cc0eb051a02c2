"""TF1 import: a checkpoint written with `tf.compat.v1` variables and a Saver, Google's variable names."""

import json

import numpy as np
import pytest
import tensorflow as tf

import keras_bert
from keras_bert import checkpoints
from keras_bert.checkpoints.assign import CheckpointMismatchError, assign, export
from keras_bert.checkpoints.layout import bert_rules, tf1_name


def write_tf1_checkpoint(folder, arrays, config, vocab_size=None, extra_slots=True):
    """Writes `bert_model.ckpt` with tf.compat.v1 variables + Saver, plus bert_config.json and vocab.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, value in arrays.items():
            variables.append(tf.compat.v1.get_variable(name, initializer=tf.constant(value)))
            if extra_slots:  # Adam slots, as in Google's pretraining checkpoints: not weights.
                for slot in ("adam_m", "adam_v"):
                    variables.append(tf.compat.v1.get_variable(
                        f"{name}/{slot}", initializer=tf.zeros(value.shape, tf.float32)))
        variables.append(tf.compat.v1.get_variable("global_step", initializer=tf.constant(1000, tf.int64)))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(folder / "bert_model.ckpt"))
    google_config = {
        "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": config.hidden_size, "initializer_range": 0.02, "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings, "num_attention_heads": config.num_heads,
        "num_hidden_layers": config.num_layers, "type_vocab_size": config.type_vocab_size,
        "vocab_size": config.vocab_size}
    (folder / "bert_config.json").write_text(json.dumps(google_config))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range((vocab_size or config.vocab_size) - len(tokens))]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return folder


def _tf1_arrays(model):
    heads = hasattr(model, "mlm_head")
    config = (model.encoder if heads else model).config
    return export(model, bert_rules(config, heads, tf1_name, kernels_out_in=False))


@pytest.fixture
def reference(randomize, tiny_config):
    # Google's checkpoints compute the tanh GELU; the reference model does too.
    pretrainer = keras_bert.BertPretrainer(keras_bert.BertEncoder(tiny_config(hidden_act="gelu_new")))
    return randomize(pretrainer, seed=7)


def test_tf1_names_and_layout(reference):
    arrays = _tf1_arrays(reference)
    assert arrays["bert/encoder/layer_1/attention/self/query/kernel"].shape == (16, 16)
    assert arrays["bert/encoder/layer_0/intermediate/dense/kernel"].shape == (16, 32)
    assert arrays["cls/seq_relationship/output_weights"].shape == (2, 16)
    assert arrays["cls/predictions/output_bias"].shape == (50,)
    assert "bert/embeddings/word_embeddings" in arrays and "cls/predictions/transform/LayerNorm/gamma" in arrays


def test_tf1_import_reproduces_outputs(tmp_path, reference, make_inputs, run_model):
    folder = write_tf1_checkpoint(tmp_path / "ckpt", _tf1_arrays(reference), reference.encoder.config)
    model = checkpoints.from_tf1(str(folder))
    assert isinstance(model, keras_bert.BertPretrainer)
    assert model.encoder.config.hidden_act == "gelu_new"  # bert_config.json's "gelu" is the tanh form
    assert model.encoder.config.lowercase is True
    inputs = make_inputs(batch=3, seq=10, seed=8, masked=3)
    expected, got = run_model(reference, inputs), run_model(model, inputs)
    for key in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6, rtol=0, err_msg=key)

    # The same weights loaded another way: through the Hugging Face layout.
    checkpoints.to_hf(reference, str(tmp_path / "hf"))
    via_hf = checkpoints.from_hf(str(tmp_path / "hf"))
    assert via_hf.encoder.config.hidden_act == "gelu_new"
    for key, value in run_model(via_hf, inputs).items():
        np.testing.assert_allclose(got[key], value, atol=1e-6, rtol=0, err_msg=key)


def test_tf1_prefix_encoder_only_and_cli(tmp_path, reference, make_inputs, run_model):
    from training.convert import main

    arrays = {k: v for k, v in _tf1_arrays(reference).items() if not k.startswith("cls/")}
    folder = write_tf1_checkpoint(tmp_path / "ckpt", arrays, reference.encoder.config, extra_slots=False)
    encoder = checkpoints.from_tf1(str(folder / "bert_model.ckpt"))  # a checkpoint prefix works too
    assert isinstance(encoder, keras_bert.BertEncoder)
    inputs = make_inputs(batch=2, seq=7, seed=9)
    expected = run_model(reference.encoder, inputs)
    for key, value in run_model(encoder, inputs).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6, rtol=0, err_msg=key)

    out = tmp_path / "out"
    assert main(["--from", "tf1", str(folder), "--out", str(out)]) == 0
    loaded = keras_bert.load(str(out))
    assert isinstance(loaded, keras_bert.BertEncoder)
    for key, value in run_model(loaded, inputs).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6, rtol=0, err_msg=key)
    assert keras_bert.load_tokenizer_settings(str(out))["lowercase"] is True
    assert (out / "vocab.txt").exists()


def test_tf1_heads_false_ignores_cls(tmp_path, reference):
    folder = write_tf1_checkpoint(tmp_path / "ckpt", _tf1_arrays(reference), reference.encoder.config,
                                  extra_slots=False)
    assert isinstance(checkpoints.from_tf1(str(folder), heads=False), keras_bert.BertEncoder)


def test_tf1_unknown_missing_misshaped_listed(tmp_path, reference):
    arrays = _tf1_arrays(reference)
    arrays["output_weights"] = np.zeros((3, 16), np.float32)  # a fine-tuning head: unknown here
    del arrays["bert/encoder/layer_1/output/LayerNorm/beta"]
    arrays["bert/pooler/dense/kernel"] = np.zeros((16, 8), np.float32)
    folder = write_tf1_checkpoint(tmp_path / "ckpt", arrays, reference.encoder.config, extra_slots=True)
    with pytest.raises(CheckpointMismatchError) as info:
        checkpoints.from_tf1(str(folder))
    error = info.value
    message = str(error)
    assert error.unknown == ["output_weights"]
    assert error.missing == ["bert/encoder/layer_1/output/LayerNorm/beta"]
    assert error.mis_shaped == [("bert/pooler/dense/kernel", (16, 16), (16, 8))]
    for text in ("output_weights", "layer_1/output/LayerNorm/beta", "bert/pooler/dense/kernel", "nothing was loaded"):
        assert text in message
    assert "adam_m" not in message and "global_step" not in message


def test_assign_is_all_or_nothing(reference, tiny_config):
    model = keras_bert.BertPretrainer(keras_bert.BertEncoder(tiny_config()))
    before = checkpoints.model_arrays(model)
    arrays = _tf1_arrays(reference)
    arrays["bert/encoder/layer_1/output/dense/bias"] = np.zeros((5,), np.float32)  # last layer: mis-shaped
    with pytest.raises(CheckpointMismatchError):
        assign(model, arrays, bert_rules(model.encoder.config, True, tf1_name, False))
    after = checkpoints.model_arrays(model)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_from_pretrained_reads_a_tf1_directory(reference, tmp_path):
    """A Google TF1 checkpoint directory gives a text-in task model with the checkpoint's encoder weights."""
    folder = write_tf1_checkpoint(tmp_path / "tf1", _tf1_arrays(reference), reference.encoder.config)
    classifier = keras_bert.BertClassifier.from_pretrained(str(folder), num_classes=2, labels=["no", "yes"])
    for loaded, expected in zip(classifier.encoder.weights, reference.encoder.weights):
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(expected))
    assert classifier.preprocessor.lowercase is True
    logits = classifier.predict(["w5 w6 w7", "w8"], verbose=0)
    ids = classifier.preprocessor(["w5 w6 w7", "w8"])
    assert ids["token_ids"].numpy().tolist()[1][:3] == [2, 13, 3]  # [CLS] w8 [SEP]: the checkpoint's vocab.txt
    np.testing.assert_allclose(logits, classifier.predict(ids, verbose=0), atol=1e-6)
