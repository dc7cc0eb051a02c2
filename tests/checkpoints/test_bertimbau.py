"""BERTimbau: `bertimbau_base` + the shared BERTimbau vocab make a cased model ready for the real checkpoint."""

import json
import os

import numpy as np
import pytest

import keras_bert
from keras_bert.checkpoints.common import vocab_is_cased, vocab_size_of
from keras_bert.checkpoints.layout import bert_rules, hf_namer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB_DIR = os.path.join(REPO, "..", "shared", "data", "vocab", "bertimbau-base-portuguese-cased")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "bertimbau_tokens.json")


@pytest.fixture(scope="module")
def vocab_file():
    path = os.path.join(VOCAB_DIR, "vocab.txt")
    if not os.path.exists(path):
        pytest.skip(f"BERTimbau vocabulary not found at {path} (../shared/data is absent)")
    return path


@pytest.fixture(scope="module")
def config():
    return keras_bert.BertConfig.from_preset("bertimbau_base")


def test_preset_matches_vocab(config, vocab_file):
    assert config.vocab_size == 29794 == vocab_size_of(vocab_file)
    assert config.lowercase is False and vocab_is_cased(vocab_file)
    with open(vocab_file, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    assert [tokens[i] for i in (0, 100, 101, 102, 103)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    hf_config = os.path.join(VOCAB_DIR, "config.json")
    if os.path.exists(hf_config):  # a Hugging Face config shipped beside the vocab
        with open(hf_config, encoding="utf-8") as f:
            assert keras_bert.BertConfig.from_hf_dict(json.load(f)).replace(lowercase=False) == config


def test_tokenizer_matches_reference(config, vocab_file):
    tokenization = pytest.importorskip("keras_bert.tokenization")
    with open(FIXTURE, encoding="utf-8") as f:
        reference = json.load(f)
    import hashlib

    with open(vocab_file, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == reference["vocab_sha256"], "vocab differs from the fixture's"
    tokenizer = tokenization.BertTokenizer(vocab_file, lowercase=config.lowercase)
    packer = tokenization.BertPacker.from_tokenizer(tokenizer, sequence_length=None)
    packed = packer(tokenizer(reference["sentences"]))
    token_ids, mask = np.asarray(packed["token_ids"]), np.asarray(packed["padding_mask"])
    for i, expected in enumerate(reference["token_ids"]):
        got = token_ids[i][mask[i] == 1].tolist()
        assert got == expected, (reference["sentences"][i], got, expected)


def test_hf_layout_of_the_real_checkpoint(config):
    # neuralmind/bert-base-portuguese-cased is a BertForPreTraining: 206 tensors under these keys.
    rules = bert_rules(config, True, hf_namer("bert."), kernels_out_in=True)
    shapes = {s: shape for rule in rules for s, shape in zip(rule.sources, rule.shapes)}
    assert len(shapes) == 5 + 16 * 12 + 2 + 7
    assert shapes["bert.embeddings.word_embeddings.weight"] == (29794, 768)
    assert shapes["bert.encoder.layer.11.intermediate.dense.weight"] == (3072, 768)
    assert shapes["cls.predictions.bias"] == (29794,)
    assert shapes["cls.seq_relationship.weight"] == (2, 768)


class _ZerosCheckpoint:
    """A lazy stand-in for the real checkpoint: right names and shapes, zero values."""

    def __init__(self, shapes):
        self._shapes = shapes

    def keys(self):
        return list(self._shapes)

    def shape_of(self, name):
        return self._shapes[name]

    def __getitem__(self, name):
        return np.zeros(self._shapes[name], np.float32)


@pytest.mark.large
def test_full_size_model_accepts_the_real_layout(config):
    from keras_bert.checkpoints.assign import assign

    model = keras_bert.BertPretrainer(keras_bert.BertEncoder(config))
    rules = bert_rules(config, True, hf_namer("bert."), kernels_out_in=True)
    shapes = {s: shape for rule in rules for s, shape in zip(rule.sources, rule.shapes)}
    shapes["bert.embeddings.position_ids"] = (1, 512)
    assign(model, _ZerosCheckpoint(shapes), rules, what="BERTimbau layout")
    assert model.count_params() > 100_000_000
