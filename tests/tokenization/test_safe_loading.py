"""Safe loading: a tokenizer config holds tokens, and a vocabulary path in a config is refused in safe mode."""

import json
import os
import zipfile

import keras
import pytest
import tensorflow as tf

from keras_bert.tokenization import BertPacker, BertTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!", "a", "secret"]


def _outside_file(tmp_path):
    # A file outside any model directory that a crafted config points at.
    path = tmp_path / "outside" / "not_a_vocab.txt"
    path.parent.mkdir()
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def _model(tokenizer):
    text = keras.Input(shape=(), dtype="string")
    packed = BertPacker.from_tokenizer(tokenizer, sequence_length=8)(tokenizer(text))
    return keras.Model(text, packed["token_ids"])


def test_config_from_file_holds_tokens(tmp_path):
    tokenizer = BertTokenizer(_outside_file(tmp_path))
    config = tokenizer.get_config()
    assert config["vocabulary"] == VOCAB
    assert json.loads(json.dumps(config))["vocabulary"] == VOCAB


def test_deserialize_refuses_path_in_safe_mode(tmp_path):
    serialized = keras.saving.serialize_keras_object(BertTokenizer(VOCAB))
    serialized["config"]["vocabulary"] = _outside_file(tmp_path)
    with pytest.raises(ValueError, match="safe mode"):
        keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    # Explicitly unsafe: the path is read (the user trusts the file).
    restored = keras.saving.deserialize_keras_object(serialized, safe_mode=False)
    assert restored.get_vocabulary() == VOCAB


def test_direct_construction_and_from_config_outside_safe_mode_read_the_file(tmp_path):
    path = _outside_file(tmp_path)
    assert BertTokenizer(path).get_vocabulary() == VOCAB
    config = dict(BertTokenizer(VOCAB).get_config(), vocabulary=path)
    assert BertTokenizer.from_config(config).get_vocabulary() == VOCAB


def test_keras_archive_round_trip_and_crafted_archive_refused(tmp_path):
    tokenizer = BertTokenizer(_outside_file(tmp_path), lowercase=True)
    model = _model(tokenizer)
    texts = tf.constant(["Hello worlds!", "a secret", ""])
    expected = model(texts).numpy().tolist()
    archive = str(tmp_path / "model" / "model.keras")
    os.makedirs(os.path.dirname(archive))
    model.save(archive)
    restored = keras.saving.load_model(archive, safe_mode=True)
    assert restored(texts).numpy().tolist() == expected

    # Craft an archive whose tokenizer config points at the outside file.
    crafted = str(tmp_path / "model" / "crafted.keras")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layers = [l for l in config["config"]["layers"] if l["class_name"] == "BertTokenizer"]
                assert layers and layers[0]["config"]["vocabulary"] == VOCAB
                layers[0]["config"]["vocabulary"] = str(tmp_path / "outside" / "not_a_vocab.txt")
                data = json.dumps(config).encode("utf-8")
            target.writestr(item, data)
    with pytest.raises(ValueError, match="safe mode"):
        keras.saving.load_model(crafted, safe_mode=True)
    with pytest.raises(ValueError, match="safe mode"):
        keras.saving.load_model(crafted)  # safe_mode defaults to True


def test_layer_building_a_tokenizer_from_its_config_is_guarded(tmp_path):
    # A layer whose from_config passes a path on (like a preprocessor) is refused too.
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(True):
        with pytest.raises(ValueError, match="safe mode"):
            BertTokenizer(_outside_file(tmp_path))
