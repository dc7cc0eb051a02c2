"""Hugging Face import/export against a tiny `BertForPreTraining` made by tests/fixtures/make_hf_fixture.py."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import keras_bert
from keras_bert import checkpoints
from keras_bert.checkpoints.assign import CheckpointMismatchError


@pytest.fixture
def hf_dir(fixtures_dir):
    return os.path.join(fixtures_dir, "hf_tiny_bert")


@pytest.fixture
def hf_reference(hf_dir):
    with open(os.path.join(hf_dir, "reference.json")) as f:
        return json.load(f)


def _inputs(reference, masked=True):
    keys = ("token_ids", "segment_ids", "padding_mask") + (("masked_positions",) if masked else ())
    return {k: np.asarray(reference[k], "int32") for k in keys}


def _copy_fixture(hf_dir, target, tensors=None, config_changes=None):
    target.mkdir(parents=True, exist_ok=True)
    config = json.load(open(os.path.join(hf_dir, "config.json")))
    config.update(config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    if tensors is None:
        tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_hf_import_reproduces_transformers_logits(hf_dir, hf_reference, run_model):
    model = checkpoints.from_hf(hf_dir)
    assert isinstance(model, keras_bert.BertPretrainer)
    config = model.encoder.config
    assert (config.hidden_size, config.num_layers, config.vocab_size, config.hidden_act) == (32, 2, 100, "gelu")
    assert config.lowercase is True
    out = run_model(model, _inputs(hf_reference))
    mlm = float(np.abs(out["mlm_logits"] - np.asarray(hf_reference["mlm_logits"])).max())
    nsp = float(np.abs(out["nsp_logits"] - np.asarray(hf_reference["nsp_logits"])).max())
    mask = np.asarray(hf_reference["padding_mask"])[..., None]
    encoded = run_model(model.encoder, _inputs(hf_reference, masked=False))
    seq = float(np.abs((encoded["sequence_output"] - np.asarray(hf_reference["sequence_output"])) * mask).max())
    print(f"HF parity max abs diff: mlm {mlm:.3g} nsp {nsp:.3g} sequence {seq:.3g}")
    assert mlm <= 1e-4 and nsp <= 1e-4 and seq <= 1e-4


def test_hf_round_trip_identical_weights(tmp_path, hf_dir):
    model = checkpoints.from_hf(hf_dir)
    out = checkpoints.to_hf(model, str(tmp_path / "export"), vocab_file=os.path.join(hf_dir, "vocab.txt"))
    original = load_file(os.path.join(hf_dir, "model.safetensors"))
    exported = load_file(os.path.join(out, "model.safetensors"))
    assert sorted(exported) == sorted(original)  # the same BertForPreTraining key layout
    for key in original:
        np.testing.assert_array_equal(exported[key], original[key], err_msg=key)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["architectures"] == ["BertForPreTraining"] and config["hidden_act"] == "gelu"
    assert json.load(open(os.path.join(out, "tokenizer_config.json")))["do_lower_case"] is True
    again = checkpoints.from_hf(out)
    before, after = checkpoints.model_arrays(model), checkpoints.model_arrays(again)
    assert sorted(before) == sorted(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_hf_bert_model_layout_without_prefix(tmp_path, hf_dir, hf_reference, run_model):
    # BertModel keys: no `bert.` prefix, no heads; plus the position_ids buffer, which is skipped.
    tensors = {k[len("bert."):]: v for k, v in load_file(os.path.join(hf_dir, "model.safetensors")).items()
               if k.startswith("bert.")}
    tensors["embeddings.position_ids"] = np.arange(64, dtype=np.int64)[None]
    folder = _copy_fixture(hf_dir, tmp_path / "bert_model", tensors, {"architectures": ["BertModel"]})
    encoder = checkpoints.from_hf(str(folder))
    assert isinstance(encoder, keras_bert.BertEncoder)
    inputs = _inputs(hf_reference, masked=False)
    expected = run_model(checkpoints.from_hf(hf_dir, heads=False), inputs)
    for key, value in run_model(encoder, inputs).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    exported = checkpoints.to_hf(encoder, str(tmp_path / "export"))
    keys = set(load_file(os.path.join(exported, "model.safetensors")))
    assert keys == set(tensors) - {"embeddings.position_ids"}
    assert json.load(open(os.path.join(exported, "config.json")))["architectures"] == ["BertModel"]


def test_hf_tied_decoder_and_old_layer_norm_names(tmp_path, hf_dir):
    tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
    tensors["bert.embeddings.LayerNorm.gamma"] = tensors.pop("bert.embeddings.LayerNorm.weight")
    tensors["bert.embeddings.LayerNorm.beta"] = tensors.pop("bert.embeddings.LayerNorm.bias")
    folder = _copy_fixture(hf_dir, tmp_path / "tied", tensors)
    model = checkpoints.from_hf(str(folder))
    reference = checkpoints.from_hf(hf_dir)
    np.testing.assert_array_equal(model.encoder.embeddings.layer_norm.gamma.numpy(),
                                  reference.encoder.embeddings.layer_norm.gamma.numpy())
    tensors["cls.predictions.decoder.weight"] = tensors["cls.predictions.decoder.weight"] + 1.0
    _copy_fixture(hf_dir, tmp_path / "untied", tensors)
    with pytest.raises(CheckpointMismatchError, match="not tied"):
        checkpoints.from_hf(str(tmp_path / "untied"))


def test_hf_unknown_missing_misshaped_listed(tmp_path, hf_dir):
    tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    tensors["classifier.weight"] = np.zeros((3, 32), np.float32)
    del tensors["bert.encoder.layer.0.attention.self.key.bias"]
    tensors["cls.seq_relationship.weight"] = np.zeros((32, 2), np.float32)
    folder = _copy_fixture(hf_dir, tmp_path / "bad", tensors)
    with pytest.raises(CheckpointMismatchError) as info:
        checkpoints.from_hf(str(folder))
    assert info.value.unknown == ["classifier.weight"]
    assert info.value.missing == ["bert.encoder.layer.0.attention.self.key.bias"]
    assert info.value.mis_shaped == [("cls.seq_relationship.weight", (2, 32), (32, 2))]


def test_convert_hf_and_load(tmp_path, hf_dir, hf_reference, run_model):
    out = tmp_path / "converted"
    checkpoints.convert("hf", hf_dir, str(out))
    loaded = keras_bert.load(str(out))
    assert isinstance(loaded, keras_bert.BertPretrainer)
    out_logits = run_model(loaded, _inputs(hf_reference))
    np.testing.assert_allclose(out_logits["mlm_logits"], hf_reference["mlm_logits"], atol=1e-4, rtol=0)
    settings = keras_bert.load_tokenizer_settings(str(out))
    assert settings["lowercase"] is True and settings["vocab_file"].endswith("vocab.txt")
    with pytest.raises(ValueError, match="Unknown source format"):
        checkpoints.convert("onnx", hf_dir, str(out))


def test_hf_mlm_only_checkpoint_needs_no_heads(tmp_path, hf_dir):
    from training.convert import main

    # A BertForMaskedLM-like checkpoint: MLM head but no NSP head.
    tensors = {k: v for k, v in load_file(os.path.join(hf_dir, "model.safetensors")).items()
               if not k.startswith("cls.seq_relationship")}
    folder = _copy_fixture(hf_dir, tmp_path / "mlm_only", tensors)
    with pytest.raises(CheckpointMismatchError, match="heads=False") as info:
        checkpoints.from_hf(str(folder))
    assert info.value.missing == ["cls.seq_relationship.weight", "cls.seq_relationship.bias"]
    assert main(["--from", "hf", str(folder), "--out", str(tmp_path / "out"), "--no-heads"]) == 0
    assert isinstance(keras_bert.load(str(tmp_path / "out")), keras_bert.BertEncoder)
    assert main(["--from", "hf", str(folder), "--out", str(tmp_path / "out2")]) == 1
