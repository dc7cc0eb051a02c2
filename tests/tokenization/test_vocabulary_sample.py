"""A WordPiece vocabulary learned from a sample of a corpus (the head of every file)."""

from keras_bert.tokenization import RESERVED_TOKENS, learn_vocabulary_from_sample


def test_vocabulary_is_learned_from_the_sample_only(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    # The heads hold "alpha"/"beta" words; the tails, past the sample, "omega"/"zulu" words.
    first.write_text("alpha beta gamma\n" * 200 + "omega omega\n" * 2000, encoding="utf-8")
    second.write_text("beta delta\n" * 200 + "zulu zulu\n" * 2000, encoding="utf-8")
    tokens = learn_vocabulary_from_sample([str(first), str(second)], 200, sample_bytes=4000)
    assert tokens[: len(RESERVED_TOKENS)] == list(RESERVED_TOKENS)
    assert {"alpha", "beta", "gamma", "delta"} <= set(tokens)
    assert not {"omega", "zulu"} & set(tokens)
    everything = learn_vocabulary_from_sample([str(first), str(second)], 200, sample_bytes=10**6)
    assert {"omega", "zulu"} <= set(everything)
