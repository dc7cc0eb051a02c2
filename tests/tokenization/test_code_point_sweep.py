"""BertTokenizer against HF `tokenizers` over every code point U+0000-U+2FFFF (+ multi-character cases).

The reference is tests/fixtures/tokenizer_sweep.npz, made by tests/fixtures/make_tokenizer_sweep.py
(tokenizers 0.23.3 BertWordPieceTokenizer, clean_text, handle_chinese_chars, strip_accents=None).
Each code point is tokenized alone and as "a<cp>b". The differences left are listed below, each with
its reason; the test fails when one disappears or a new one appears.
"""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_bert.tokenization import BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "fixtures", "make_tokenizer_sweep.py")


def _ranges(text):
    points = set()
    for item in text.split():
        first, _, last = item.partition("-")
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return points


# --- Differences in both vocabularies -------------------------------------------------------------
# 1. Unicode table versions. HF's punctuation / mark / control tests (Rust `unicode_categories`) use
#    older Unicode tables than ours (RE2 in TF for the control and Mn regexes, ICU in tensorflow-text
#    for punctuation; Python 3.11 = Unicode 14 gives the categories named here). Every code point
#    below was assigned, or re-categorised, after the Unicode version of HF's tables:
#    - punctuation (Po/Ps/Pe/Pd) added in Unicode 9-16: we split around it, HF does not.
NEW_PUNCTUATION = _ranges(
    "061D 09FD 0A76 0C77 0C84 1B7D-1B7E 2E43-2E4F 2E52-2E5D 10EAD 10F55-10F59 10F86-10F89 1144B-1144F "
    "1145A-1145B 1145D 11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C 11A9E-11AA2 "
    "11C41-11C45 11C70-11C71 11EF7-11EF8 11FFF 12FF1-12FF2 16E97-16E9A 16FE2 1E95E-1E95F"
)
#    - format characters (Cf) added in Unicode 10-14: deleted as control characters by us, not by HF.
NEW_FORMAT = _ranges("0890-0891 08E2 110CD 13430-13438")
#    - U+166D CANADIAN SYLLABICS CHI SIGN: Po until Unicode 11, So since 12 (HF still splits on it).
RECATEGORISED = _ranges("166D")
#    - unassigned in Python's Unicode 14, assigned (punctuation or marks) in Unicode 15-16, which
#      tensorflow-text's ICU knows: we split or delete, HF keeps them inside the word.
UNICODE_15_16 = {
    "uncased": _ranges(
        "0ECE 1B4E-1B4F 1B7F 10D6E 10EFD-10EFF 11241 113D4-113D5 113D7-113D8 11B00-11B09 11BE1 11F00-11F01 "
        "11F36-11F3A 11F40 11F42-11F4F 13439-13440 13447-13455 16D6D-16D6F 1E08F 1E4EC-1E4EF 1E5FF"
    ),
    "cased": _ranges(
        "1B4E-1B4F 1B7F 10D6E 113D4-113D5 113D7-113D8 11B00-11B09 11BE1 11F43-11F4F 13439-1343F 16D6D-16D6F "
        "1E5FF"
    ),
}
# 2. HF deviates from original BERT: its `is_chinese_char` starts CJK Extension E at U+2B920, original
#    BERT's `_is_chinese_char` (and tensorflow-text) at U+2B820, so we split U+2B820-U+2B91F as CJK.
HF_CJK_RANGE = _ranges("2B820-2B91F")

# --- Uncased only ---------------------------------------------------------------------------------
# 1. Non-spacing marks (Mn) added in Unicode 10-16: deleted by our accent stripping (RE2's \p{Mn}),
#    kept by HF's older tables (a lone one is [UNK] there, nothing for us).
NEW_MARKS = _ranges(
    "07FD 0898-089F 08CA-08E1 09FE 0AFA-0AFF 0B55 0C04 0C3C 0D00 0D3B-0D3C 0D81 0EBA 180F 1885-1886 "
    "1ABF-1ACE 1DF6-1DFB A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAC 10F46-10F50 10F82-10F85 11070 "
    "11073-11074 110C2 111C9 111CF 1123E 1133B 11438-1143F 11442-11444 11446 1145E 1182F-11837 "
    "11839-1183A 1193B-1193C 1193E 11943 119D4-119D7 119DA-119DB 119E0 11A01-11A0A 11A33-11A38 "
    "11A3B-11A3E 11A47 11A51-11A56 11A59-11A5B 11A8A-11A96 11A98-11A99 11C30-11C36 11C38-11C3D 11C3F "
    "11C92-11CA7 11CAA-11CB0 11CB2-11CB3 11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 "
    "11D90-11D91 11D95 11D97 11EF3-11EF4 16F4F 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006 1E008-1E018 "
    "1E01B-1E021 1E023-1E024 1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A"
)
# 2. U+1734 HANUNOO SIGN PAMUDPOD: Mc up to Unicode 14 (RE2: not Mn, kept), Mn in HF's tables.
MARK_RECATEGORISED = _ranges("1734")
# In the cased vocabulary only U+111C9 (SHARADA SANDHI MARK, Mn since Unicode 8) differs among marks:
# tensorflow-text's punctuation test (newer ICU) splits around it, HF does not.
CASED_MARK = _ranges("111C9")

EXPECTED_CODE_POINTS = {
    "uncased": NEW_PUNCTUATION | NEW_FORMAT | RECATEGORISED | UNICODE_15_16["uncased"] | HF_CJK_RANGE
    | NEW_MARKS | MARK_RECATEGORISED,
    "cased": NEW_PUNCTUATION | NEW_FORMAT | RECATEGORISED | UNICODE_15_16["cased"] | HF_CJK_RANGE
    | CASED_MARK,
}
# Multi-character cases that differ (uncased only): the final sigma. Original BERT lower-cases each
# whitespace token with Python's str.lower(), which maps a word-final "Σ" to "ς"; so does StringLower.
# HF lower-cases character by character ("Σ" -> "σ" always). We follow original BERT (checked below).
EXPECTED_MULTI = {"uncased": {"ΟΔΥΣΣΕΥΣ", "ὈΔΥΣΣΕΎΣ", "ΑΣ ΑΣ. ΣΑ Σ", "σς Σ'Σ"}, "cased": set()}


def _load_sweep():
    spec = importlib.util.spec_from_file_location("make_tokenizer_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not os.path.exists(module.OUTPUT):
        pytest.skip(f"{module.OUTPUT} is missing (run {SCRIPT})")
    return module, np.load(module.OUTPUT)


@pytest.fixture(scope="module")
def sweep():
    return _load_sweep()


def _differences(module, reference, name):
    relative, lowercase = module.VOCABS[name]
    vocab = os.path.join(module.VOCAB_DIR, relative)
    if not os.path.exists(vocab):
        pytest.skip(f"vocabulary {vocab} not found (../shared/data is absent)")
    inputs = module.sweep_inputs()
    assert int(reference["num_inputs"]) == len(inputs)
    tokenizer = BertTokenizer(vocab, lowercase=lowercase)
    ours = tokenizer(tf.constant([s.encode("utf-8") for s in inputs]))
    flat, splits = ours.flat_values.numpy(), ours.row_splits.numpy()
    ref_flat, ref_splits = reference[f"{name}_ids"], reference[f"{name}_splits"]
    ours_lengths, ref_lengths = np.diff(splits), np.diff(ref_splits)
    differing = set(np.nonzero(ours_lengths != ref_lengths)[0].tolist())
    same_length = np.nonzero(ours_lengths == ref_lengths)[0]
    # Same lengths: compare the ids of those rows at once.
    ours_rows = np.repeat(ours_lengths == ref_lengths, ours_lengths)
    ref_rows = np.repeat(ours_lengths == ref_lengths, ref_lengths)
    mismatch = flat[ours_rows] != ref_flat[ref_rows]
    row_of = np.repeat(same_length, ours_lengths[same_length])
    differing |= set(row_of[mismatch].tolist())
    num_multi = len(module.MULTI_CHARACTER_CASES)
    code_points, multi = set(), set()
    for index in differing:
        text = inputs[index]
        if index >= len(inputs) - num_multi:
            multi.add(text)
        else:
            code_points.add(ord(text) if len(text) == 1 else ord(text[1]))
    return tokenizer, code_points, multi


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_code_point_sweep_matches_hf_but_listed_differences(sweep, name):
    module, reference = sweep
    _, code_points, multi = _differences(module, reference, name)
    expected = EXPECTED_CODE_POINTS[name]
    fmt = lambda points: " ".join(f"U+{p:04X}" for p in sorted(points)[:50])
    assert not code_points - expected, "new differences: " + fmt(code_points - expected)
    assert not expected - code_points, "listed but no longer different: " + fmt(expected - code_points)
    assert multi == EXPECTED_MULTI[name]


@pytest.fixture
def uncased_tokenizer(sweep):
    """The uncased tokenizer with the sweep's bert-base-uncased vocabulary, or skip when it is absent."""
    module, _ = sweep
    vocab = os.path.join(module.VOCAB_DIR, module.VOCABS["uncased"][0])
    if not os.path.exists(vocab):
        pytest.skip(f"vocabulary {vocab} not found (../shared/data is absent)")
    return BertTokenizer(vocab, lowercase=True)


def test_uncased_examples_of_the_issue(uncased_tokenizer):
    tokenizer = uncased_tokenizer
    pieces = lambda text: [tokenizer.id_to_token(i) for i in tokenizer(tf.constant(text)).numpy()]
    assert pieces("Straße") == ["st", "##raße"]
    assert pieces("½ cup")[0] == "½" and pieces("x²") == ["x", "##²"]
    assert pieces("µm")[0] == "µ" and pieces("ﬁnal") != ["final"] and pieces("Ⅻ") == ["[UNK]"]
    assert pieces("İstanbul ISTANBUL") == pieces("istanbul istanbul")
    # Final sigma as original BERT (Python str.lower), where HF keeps "σ".
    assert "ΟΔΥΣΣΕΥΣ".lower().endswith("ς") and pieces("ΟΔΥΣΣΕΥΣ")[-1] == "##ς"
    assert tokenizer.detokenize(tokenizer(tf.constant(["Unaffable Straße"]))).numpy()[0].decode() == "unaffable straße"


def test_offsets_follow_the_new_normalisation(sweep, uncased_tokenizer):
    module, _ = sweep
    tokenizer = uncased_tokenizer
    texts = list(module.MULTI_CHARACTER_CASES)
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts))
    assert ids.to_list() == tokenizer(tf.constant(texts)).to_list()
    for text, s, e in zip(texts, starts.to_list(), ends.to_list()):
        raw = text.encode("utf-8")
        for a, b in zip(s, e):
            assert 0 <= a < b <= len(raw)
            raw[a:b].decode("utf-8")  # Offsets fall on character boundaries.
