"""Parity of BertTokenizer with Hugging Face `tokenizers`' BertWordPieceTokenizer on real text.

Measured (full corpora, `large` tests):
- english_books, bert-base-uncased: 66,372 / 66,372 lines identical (100%).
- machado_de_assis, BERTimbau cased: 203,364 / 203,364 lines identical (100%) with the
  control-character deletion in BertTokenizer. Without it, 101 lines differed: they contain
  C1 control characters from a cp1252 mis-decoding (U+0092 for an apostrophe, as in
  "d\\x92água", "n\\x92alma"; U+0097 for a dash). Original BERT and HF delete control
  characters ("dágua"), while tensorflow-text's FastBertNormalize alone turns them into a
  space ("d água"), so BertTokenizer deletes them before normalising.
Uncased normalisation is original BERT's (str.lower, NFD, no Mn); the differences left over all code points
are listed in test_code_point_sweep.py.
"""

import glob
import os

import pytest
import tensorflow as tf

from keras_bert.tokenization import BertTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
UNCASED_VOCAB = os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt")
CASED_VOCAB = os.path.join(DATA, "vocab", "bertimbau-base-portuguese-cased", "vocab.txt")
ENGLISH = os.path.join(DATA, "english_books", "*.txt")
PORTUGUESE = os.path.join(DATA, "portuguese", "machado_de_assis", "*", "*.txt")


def _lines(pattern, limit=None):
    files = sorted(glob.glob(pattern))
    if not files:
        pytest.skip(f"real data not found at {pattern} (../shared/data is absent)")
    lines = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle)
    if limit:
        step = max(1, len(lines) // limit)
        lines = lines[::step][:limit]
    return lines


def _parity(vocab, lowercase, lines):
    tokenizers = pytest.importorskip("tokenizers")
    if not os.path.exists(vocab):
        pytest.skip(f"vocabulary {vocab} not found (../shared/data is absent)")
    reference = tokenizers.BertWordPieceTokenizer(
        vocab, lowercase=lowercase, strip_accents=lowercase, clean_text=True, handle_chinese_chars=True
    )
    expected = [e.ids for e in reference.encode_batch(lines, add_special_tokens=False)]
    layer = BertTokenizer(vocab, lowercase=lowercase)
    actual = []
    for start in range(0, len(lines), 4096):
        actual.extend(layer(tf.constant(lines[start : start + 4096])).to_list())
    differing = [(line, a, e) for line, a, e in zip(lines, actual, expected) if a != e]
    for line, a, e in differing[:20]:
        print(f"DIFF {line!r}\n  ours {a}\n  hf   {e}")
    share = 1 - len(differing) / len(lines)
    print(f"parity: {len(lines) - len(differing)}/{len(lines)} lines identical ({share:.4%})")
    return share


def test_parity_english_uncased_sample():
    assert _parity(UNCASED_VOCAB, True, _lines(ENGLISH, limit=3000)) >= 0.999


def test_parity_portuguese_cased_sample():
    assert _parity(CASED_VOCAB, False, _lines(PORTUGUESE, limit=3000)) >= 0.999


def test_control_characters_deleted_like_bert():
    if not os.path.exists(CASED_VOCAB):
        pytest.skip(f"vocabulary {CASED_VOCAB} not found (../shared/data is absent)")
    lines = ["um copo d\x92água", "estrela d\x92alva \x97 ora"]
    assert _parity(CASED_VOCAB, False, lines) == 1.0


@pytest.mark.large
def test_parity_english_uncased_full():
    assert _parity(UNCASED_VOCAB, True, _lines(ENGLISH)) >= 0.999


@pytest.mark.large
def test_parity_portuguese_cased_full():
    assert _parity(CASED_VOCAB, False, _lines(PORTUGUESE)) >= 0.999
