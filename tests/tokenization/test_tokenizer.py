"""Unit tests for BertTokenizer, BertPacker and vocabulary validation (tiny inputs)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert.tokenization import (
    BertPacker,
    BertTokenizer,
    VocabularyError,
    load_vocabulary,
    truncated_pair_lengths,
)

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "hello", "world", "##s", "!", "a", "cafe", "café", "Hello", "中", "un", "##aff", "##able",
]


def test_uncased_lowercases_strips_accents_and_splits():
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    ids = tokenizer(tf.constant(["HELLO worlds! Café 中unaffable", ""])).to_list()
    assert ids == [[5, 6, 7, 8, 10, 13, 14, 15, 16], []]
    assert tokenizer.id_to_token(10) == "cafe"
    assert tokenizer.token_to_id("[MASK]") == 4
    assert tokenizer.vocabulary_size() == len(VOCAB)


def test_cased_keeps_case_and_accents():
    tokenizer = BertTokenizer(VOCAB, lowercase=False)
    assert tokenizer(tf.constant(["Hello café HELLO"])).to_list() == [[12, 11, 1]]


def test_scalar_input_and_invalid_utf8():
    tokenizer = BertTokenizer(VOCAB)
    assert tokenizer(tf.constant("hello")).numpy().tolist() == [5]
    # An invalid byte is deleted like a control character (BERT deletes U+FFFD).
    assert tokenizer(tf.constant([b"hel\xfflo a"])).to_list() == [[5, 9]]


def test_offsets_point_into_original_bytes():
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    text = "Café, HELLO\x00 unaffable!"
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant([text]))
    assert ids.to_list() == tokenizer(tf.constant([text])).to_list()
    raw = text.encode("utf-8")
    pieces = [raw[s:e].decode("utf-8") for s, e in zip(starts.to_list()[0], ends.to_list()[0])]
    assert pieces == ["Café", ",", "HELLO", "un", "aff", "able", "!"]


def test_offsets_with_empty_strings_in_batch():
    tokenizer = BertTokenizer(VOCAB, lowercase=True)
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(["", "a hello", "", "\x00"]))
    assert ids.to_list() == [[], [9, 5], [], []]
    assert starts.to_list() == [[], [0, 2], [], []] and ends.to_list() == [[], [1, 7], [], []]


def test_works_in_tf_function_and_config_round_trip():
    tokenizer = BertTokenizer(VOCAB)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(text):
        return tokenizer(text).to_tensor()

    assert tokenize(tf.constant(["a hello"])).numpy().tolist() == [[9, 5]]
    clone = BertTokenizer.from_config(tokenizer.get_config())
    assert clone(tf.constant(["a hello"])).to_list() == [[9, 5]]
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer)).lowercase


def test_rejects_unsupported_accent_setting():
    with pytest.raises(ValueError, match="strip_accents"):
        BertTokenizer(VOCAB, lowercase=True, strip_accents=False)


@pytest.mark.parametrize(
    "lines,message",
    [
        (["[PAD]", "[UNK]", "[CLS]", "[SEP]"], "MASK"),
        (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"], ":7: duplicate"),
        (["[PAD]", "[UNK]", "", "[CLS]", "[SEP]", "[MASK]"], ":3: empty"),
    ],
)
def test_load_vocabulary_errors_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=message) as info:
        load_vocabulary(path)
    assert str(path) in str(info.value)


def test_load_vocabulary_ok(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    assert load_vocabulary(path) == VOCAB
    # Built from a file, the config still holds the tokens (a saved model reads no outside file).
    assert BertTokenizer(str(path)).get_config()["vocabulary"] == VOCAB


def _reference_truncate(a, b, budget):
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return len(a), len(b)


def test_truncation_matches_bert_rule():
    pairs = [(la, lb) for la in range(0, 12) for lb in range(0, 12)]
    la = tf.constant([p[0] for p in pairs], tf.int64)
    lb = tf.constant([p[1] for p in pairs], tf.int64)
    for budget in (1, 4, 7, 10):
        new_a, new_b = truncated_pair_lengths(la, lb, budget)
        expected = [_reference_truncate(range(x), range(y), budget) for x, y in pairs]
        assert list(zip(new_a.numpy().tolist(), new_b.numpy().tolist())) == expected


def test_packer_pair_single_and_pad_to_longest():
    a = tf.ragged.constant([[10, 11, 12, 13, 14], [20]])
    b = tf.ragged.constant([[30, 31], [40, 41, 42]])
    packer = BertPacker(cls_token_id=2, sep_token_id=3, pad_token_id=0, sequence_length=8)
    out = packer((a, b))
    np.testing.assert_array_equal(
        out["token_ids"], [[2, 10, 11, 12, 3, 30, 31, 3], [2, 20, 3, 40, 41, 42, 3, 0]]
    )
    np.testing.assert_array_equal(
        out["segment_ids"], [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 0]]
    )
    np.testing.assert_array_equal(out["padding_mask"][1], [1, 1, 1, 1, 1, 1, 1, 0])
    single = BertPacker(2, 3, 0, sequence_length=4)(a)
    np.testing.assert_array_equal(single["token_ids"], [[2, 10, 11, 3], [2, 20, 3, 0]])
    longest = BertPacker(2, 3, 0, sequence_length=100, pad_to_longest=True)(a)
    assert longest["token_ids"].shape == (2, 7)
    unlimited = BertPacker(2, 3, 0, sequence_length=None)((a, b))
    assert unlimited["token_ids"].shape == (2, 10)
    assert all(v.dtype == tf.int32 for v in out.values())
