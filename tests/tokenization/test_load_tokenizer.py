"""`keras_bert.load_tokenizer(dir)`: the tokenizer a model directory was saved with."""

import json

import pytest

import keras_bert
from keras_bert.tokenization import RESERVED_TOKENS, BertTokenizer
from tests.test_case import tiny_config


def test_load_tokenizer_uses_the_saved_vocabulary_and_casing(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(list(RESERVED_TOKENS) + ["Hello", "hello", "world"]) + "\n", encoding="utf-8")
    directory = keras_bert.save(keras_bert.BertEncoder(tiny_config()), tmp_path / "model", vocab_file=str(vocab),
                                lowercase=False)
    tokenizer = keras_bert.load_tokenizer(directory)
    assert isinstance(tokenizer, BertTokenizer) and tokenizer.lowercase is False
    assert tokenizer(["Hello world"]).to_list() == [[5, 7]]
    assert keras_bert.load_tokenizer(directory, name="tok").name == "tok"


def test_load_tokenizer_names_the_directory_without_vocab(tmp_path):
    keras_bert.save(keras_bert.BertEncoder(tiny_config()), tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} has no vocab.txt"):
        keras_bert.load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"vocab_file": "vocab.txt", "lowercase": True}))
    with pytest.raises(FileNotFoundError, match="has no vocab.txt"):  # named, but deleted since
        keras_bert.load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        keras_bert.load_tokenizer(tmp_path / "elsewhere")
