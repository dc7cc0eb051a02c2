"""Learning and writing a WordPiece vocabulary (`keras_bert.tokenization.learn_vocabulary`)."""

import pytest

from keras_bert.tokenization import (RESERVED_TOKENS, VocabularyError, learn_vocabulary, load_vocabulary,
                                     write_vocabulary)

CORPUS = "The quick brown fox jumps over the lazy dog.\nFoxes and dogs, again!\n\nÉcole et Été.\n"


def test_learned_vocabulary_starts_with_reserved_and_unused_tokens(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS * 10, encoding="utf-8")  # words seen often enough to be kept whole
    tokens = learn_vocabulary([str(corpus)], vocab_size=100, unused_tokens=2)
    assert tokens[:7] == list(RESERVED_TOKENS) + ["[unused0]", "[unused1]"]
    assert len(tokens) == len(set(tokens)) <= 100
    assert "the" in tokens and "The" not in tokens and "ecole" in tokens  # uncased: lower-cased, accents stripped
    cased = learn_vocabulary([str(corpus)], vocab_size=100, cased=True)
    assert "The" in cased and "École" in cased


def test_write_vocabulary_round_trips_and_refuses_invalid_tokens(tmp_path):
    tokens = list(RESERVED_TOKENS) + ["a", "##b"]
    path = write_vocabulary(tokens, tmp_path / "new" / "vocab.txt")
    assert load_vocabulary(path) == tokens
    with pytest.raises(VocabularyError, match="duplicate"):
        write_vocabulary(tokens + ["a"], tmp_path / "bad.txt")
    assert not (tmp_path / "bad.txt").exists()
