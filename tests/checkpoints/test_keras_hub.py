"""keras-hub parity: `from_keras_hub` / `to_keras_hub` and the keras_hub preset converter."""

import json
import os

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras_bert  # noqa: E402
from keras_bert import checkpoints  # noqa: E402


def _backbone(randomize):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=24, dropout=0.0)
    return randomize(backbone, seed=1)


def _max_diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in ("sequence_output", "pooled_output"))


def test_from_keras_hub_matches_backbone_outputs(randomize, make_inputs, run_model):
    backbone = _backbone(randomize)
    encoder = checkpoints.from_keras_hub(backbone)
    assert isinstance(encoder, keras_bert.BertEncoder)
    assert encoder.config.hidden_act == "gelu_new" and encoder.config.num_layers == 2
    inputs = make_inputs(batch=4, seq=12, seed=3)
    assert inputs["padding_mask"].min() == 0  # some rows are padded
    expected, got = run_model(backbone, inputs), run_model(encoder, inputs)
    diff = _max_diff(expected, got)
    print(f"keras-hub parity max abs diff: {diff:.3g}")
    assert diff <= 1e-5


def test_to_keras_hub_round_trip(randomize, tiny_config, make_inputs, run_model):
    encoder = randomize(keras_bert.BertEncoder(tiny_config()), seed=2)
    backbone = checkpoints.to_keras_hub(encoder)
    inputs = make_inputs(batch=3, seq=9, seed=4)
    assert _max_diff(run_model(encoder, inputs), run_model(backbone, inputs)) <= 1e-5
    again = checkpoints.from_keras_hub(backbone)
    before, after = checkpoints.model_arrays(encoder), checkpoints.model_arrays(again)
    assert sorted(before) == sorted(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_to_keras_hub_refuses_what_it_cannot_compute(tiny_config):
    encoder = keras_bert.BertEncoder(tiny_config(hidden_act="gelu"))
    with pytest.raises(ValueError, match="tanh GELU"):
        checkpoints.to_keras_hub(encoder)
    assert isinstance(checkpoints.to_keras_hub(encoder, strict=False), keras_hub.models.BertBackbone)


def test_convert_keras_hub_preset_folder(tmp_path, randomize, make_inputs, run_model):
    from training.convert import main

    backbone = _backbone(randomize)
    preset = tmp_path / "preset"
    backbone.save_to_preset(str(preset))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(45)]) + "\n")
    out = tmp_path / "out"
    assert main(["--from", "keras_hub", str(preset), "--out", str(out), "--vocab", str(vocab)]) == 0
    loaded = keras_bert.load(str(out))
    assert isinstance(loaded, keras_bert.BertEncoder)
    inputs = make_inputs(batch=2, seq=8, seed=5)
    assert _max_diff(run_model(backbone, inputs), run_model(loaded, inputs)) <= 1e-5
    settings = json.loads((out / "tokenizer.json").read_text())
    assert settings == {"vocab_file": "vocab.txt", "lowercase": True}
    assert os.path.exists(out / "vocab.txt")


def test_convert_keras_hub_preset_with_tokenizer(tmp_path, randomize):
    backbone = _backbone(randomize)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"W{i}" for i in range(45)]
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=False).save_to_preset(preset)
    out = tmp_path / "out"
    model = checkpoints.convert("keras_hub", preset, str(out))
    assert model.config.lowercase is False
    settings = keras_bert.load_tokenizer_settings(str(out))
    assert settings["lowercase"] is False
    assert (out / "vocab.txt").read_text().split("\n")[:6] == vocab[:6]
