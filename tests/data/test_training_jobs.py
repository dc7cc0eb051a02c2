"""The thin training jobs: vocab, tokenize, prepare_pretraining (tiny inputs)."""

import os

import pytest

from keras_bert.tokenization import BertTokenizer, load_vocabulary
from training import prepare_pretraining, tokenize, vocab

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNCASED_VOCAB = os.path.join(REPO_ROOT, "..", "shared", "data", "vocab", "bert-base-uncased", "vocab.txt")

CORPUS = (
    "The quick brown fox jumps over the lazy dog.\n"
    "A second sentence, with punctuation!\n\n"
    "Another document starts here.\nIt has two lines about foxes and dogs.\n"
)


def test_vocab_job_writes_valid_vocab(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS * 3, encoding="utf-8")
    output = tmp_path / "vocab.txt"
    assert vocab.main(["--corpus", str(corpus), "--vocab-size", "120", "--output", str(output)]) == 0
    tokens = load_vocabulary(output)
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(tokens) <= 120
    ids = BertTokenizer(str(output))(["the quick fox"]).to_list()[0]
    assert ids and 1 not in ids  # no [UNK] for words of the corpus


def test_tokenize_job_one_line_per_line(tmp_path):
    if not os.path.exists(UNCASED_VOCAB):
        pytest.skip(f"{UNCASED_VOCAB} not found (../shared/data is absent)")
    source = tmp_path / "in.txt"
    source.write_bytes(b"Hello world.\n\nbad \xff byte\n")
    target = tmp_path / "out.txt"
    assert tokenize.main(["--vocab", UNCASED_VOCAB, "--input", str(source), "--output", str(target)]) == 0
    assert target.read_text().split("\n") == ["7592 2088 1012", "", "2919 24880", ""]


def test_prepare_pretraining_job(tmp_path, capsys):
    if not os.path.exists(UNCASED_VOCAB):
        pytest.skip(f"{UNCASED_VOCAB} not found (../shared/data is absent)")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS * 4, encoding="utf-8")
    out = tmp_path / "shards"
    args = ["--corpus", str(corpus), "--vocab", UNCASED_VOCAB, "--out", str(out), "--max-seq-length", "32",
            "--max-predictions-per-seq", "5", "--dupe-factor", "2", "--num-shards", "2", "--gzip", "--whole-word-masking"]
    assert prepare_pretraining.main(args) == 0
    assert sorted(os.listdir(out)) == ["pretraining-00000-of-00002.tfrecord.gz", "pretraining-00001-of-00002.tfrecord.gz"]
    first = (out / "pretraining-00000-of-00002.tfrecord.gz").read_bytes()
    assert prepare_pretraining.main(args) == 0  # deterministic output
    assert (out / "pretraining-00000-of-00002.tfrecord.gz").read_bytes() == first
    assert "instances:" in capsys.readouterr().out


def test_prepare_pretraining_invalid_utf8_flag(tmp_path, capsys):
    if not os.path.exists(UNCASED_VOCAB):
        pytest.skip(f"{UNCASED_VOCAB} not found (../shared/data is absent)")
    from keras_bert.trainer import run

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(CORPUS.encode("utf-8") * 4 + b"bad \xff byte here\n")
    args = ["--corpus", str(corpus), "--vocab", UNCASED_VOCAB, "--out", str(tmp_path / "shards"),
            "--max-seq-length", "32", "--max-predictions-per-seq", "5", "--dupe-factor", "1"]
    with pytest.raises(SystemExit) as exit_info:
        run(prepare_pretraining.main, args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "error: " in error and "corpus.txt:21: not UTF-8" in error
    assert prepare_pretraining.main(args + ["--on-bad-file", "report"]) == 0
    assert "invalid_utf8_line" in capsys.readouterr().out
