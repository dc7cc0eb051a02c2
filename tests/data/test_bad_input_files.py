"""Broken copies of real files: each reader raises a DataError naming the file and the line/record/field.

Every case takes the first lines (records) of a real file from ../shared/data, breaks them (re-encoded as
Latin-1, binary bytes appended, a key dropped, a type changed, emptied, header only) and checks the message.
A UTF-8 BOM is accepted: the examples are those of the file without it.
"""

import json
import os
import re

import pytest

from keras_bert.data import (DataError, read_assin2, read_conll, read_documents, read_harem, read_squad_records,
                             read_text_examples)
from keras_bert.data.ner import _read_offset_documents
from tests.training.conftest import REPO_ROOT, run_job, tiny_init  # noqa: F401 (fixture)
from tests.training.test_finetune_tasks import LOOP

DATA = os.path.join(REPO_ROOT, "..", "shared", "data")
SST2 = os.path.join(DATA, "sst2", "dev.tsv")
ASSIN2 = os.path.join(DATA, "portuguese", "assin2", "assin2-dev.xml")
CONLL = os.path.join(DATA, "portuguese", "ner_conll", "lener_br", "dev.conll")
HAREM = os.path.join(DATA, "portuguese", "harem_bertimbau", "MiniHAREM-selective.json")
SQUAD = os.path.join(DATA, "squad", "dev-v1.1.json")
BOOK = os.path.join(DATA, "english_books", "carroll-alice.txt")
VOCAB = os.path.join(DATA, "vocab", "bert-base-uncased", "vocab.txt")
BINARY = b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00"
BOM = b"\xef\xbb\xbf"


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path} (see ../shared/data/README.md)")
    return path


def _lines(path, count):
    with open(_need(path), encoding="utf-8") as f:
        return [next(f) for _ in range(count)]


# --- The real slices, as text ---
def sst2_tsv():
    lines = _lines(SST2, 21)
    lines[3] = "café " + lines[3]  # A non-ASCII character on line 4, so that Latin-1 differs from UTF-8.
    return "".join(lines)


def sst2_jsonl():
    rows = [line.rstrip("\n").split("\t") for line in _lines(SST2, 21)[1:]]
    return "".join(json.dumps({"sentence": text, "label": label}) + "\n" for text, label in rows)


def sst2_csv():
    rows = [line.rstrip("\n").split("\t") for line in _lines(SST2, 21)[1:]]
    return "sentence,label\n" + "".join(f'"{text.replace(chr(34), chr(34) * 2)}",{label}\n' for text, label in rows)


def assin2_xml():
    lines, pairs = [], 0
    with open(_need(ASSIN2), encoding="utf-8") as f:
        for line in f:
            lines.append(line)
            pairs += "</pair>" in line
            if pairs == 5:
                break
    return "".join(lines) + "</entailment-corpus>\n"


def conll_text():
    lines = _lines(CONLL, 200)
    while lines[-1].strip():  # End at a sentence boundary.
        lines.pop()
    return "".join(lines)


def harem_documents():
    with open(_need(HAREM), encoding="utf-8") as f:
        return json.load(f)[:3]


def squad_json():
    with open(_need(SQUAD), encoding="utf-8") as f:
        article = json.load(f)["data"][0]
    article = dict(article, paragraphs=article["paragraphs"][:2])
    article["paragraphs"][0]["qas"][0]["question"] += " (café)"  # Non-ASCII, for the Latin-1 case.
    return {"version": "1.1", "data": [article]}


def book_text():
    return "".join(_lines(BOOK, 60)) + "\nSegunda parte: o café.\n"


# --- How to break them ---
def latin1(text):
    return text.encode("latin-1", errors="replace")


def binary_appended(text):
    return text.encode("utf-8") + BINARY


def bom(text):
    return BOM + text.encode("utf-8")


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


def _set(documents, path, value=None, drop=False):
    """A deep copy of JSON `documents` with `path` (a list of keys/indices) set to `value` or dropped."""
    documents = json.loads(json.dumps(documents))
    target = documents
    for key in path[:-1]:
        target = target[key]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return documents


QA = ["data", 0, "paragraphs", 0, "qas", 0]


def _first_nonascii_line(text):
    return next(i for i, line in enumerate(text.splitlines(), start=1) if any(ord(c) > 127 for c in line))


# (name, suffix, make the bytes: () -> bytes, read: path -> examples, regex the message must match after the path)
CASES = [
    # TSV (SST-2)
    ("tsv_latin1", ".tsv", lambda: latin1(sst2_tsv()), "tsv", r":4: not UTF-8 text .*byte 0xe9"),
    ("tsv_binary", ".tsv", lambda: binary_appended(sst2_tsv()), "tsv", r":22: (binary data|not UTF-8 text)"),
    ("tsv_empty", ".tsv", lambda: b"", "tsv", r": no examples"),
    ("tsv_header_only", ".tsv", lambda: sst2_tsv().splitlines(True)[0].encode(), "tsv", r": no examples"),
    ("tsv_blank_lines_only", ".tsv", lambda: b"sentence\tlabel\n\n\n", "tsv", r": no examples .*empty_line=2"),
    ("tsv_no_label_column", ".tsv",
     lambda: "".join(line.split("\t")[0] + "\n" for line in sst2_tsv().splitlines()).encode(), "tsv",
     r":2: missing column 'label'"),
    ("tsv_wrong_column_count", ".tsv", lambda: (sst2_tsv() + "a\tb\tc\n").encode(), "tsv",
     r":22: expected 2 columns"),
    # CSV
    ("csv_latin1", ".csv", lambda: latin1(sst2_csv().replace("\n", " é\n", 3).replace(" é\n", "\n", 1)), "csv",
     r":[23]: not UTF-8 text"),
    ("csv_binary", ".csv", lambda: binary_appended(sst2_csv()), "csv", r":22: (binary data|not UTF-8 text)"),
    ("csv_header_only", ".csv", lambda: b"sentence,label\n", "csv", r": no examples"),
    # JSON lines
    ("jsonl_latin1", ".jsonl", lambda: latin1(sst2_jsonl().replace('"label"', '"labél"', 3)
                                              .replace('"labél"', '"label"', 1).replace('"labél"', '"label"', 1)),
     "jsonl", r":3: not UTF-8 text"),
    ("jsonl_binary", ".jsonl", lambda: binary_appended(sst2_jsonl()), "jsonl", r":21: (binary data|not UTF-8)"),
    ("jsonl_row_is_list", ".jsonl", lambda: (sst2_jsonl() + '["a film", "1"]\n').encode(), "jsonl",
     r":21: expected a JSON object .*got a list"),
    ("jsonl_label_is_dict", ".jsonl", lambda: (sst2_jsonl() + '{"sentence": "a film", "label": {"x": 1}}\n').encode(),
     "jsonl", r":21: label column 'label' must be a string or a number, got dict"),
    ("jsonl_label_is_null", ".jsonl", lambda: (sst2_jsonl() + '{"sentence": "a film", "label": null}\n').encode(),
     "jsonl", r":21: label column 'label' .*got NoneType"),
    ("jsonl_text_is_list", ".jsonl", lambda: (sst2_jsonl() + '{"sentence": ["a", "film"], "label": 1}\n').encode(),
     "jsonl", r":21: text column 'sentence' must be a string, got list"),
    ("jsonl_missing_key", ".jsonl", lambda: (sst2_jsonl() + '{"text": "a film", "label": 1}\n').encode(), "jsonl",
     r":21: missing column 'sentence'"),
    ("jsonl_invalid", ".jsonl", lambda: (sst2_jsonl() + '{"sentence": "a film", \n').encode(), "jsonl",
     r":21: invalid JSON"),
    ("jsonl_empty", ".jsonl", lambda: b"\n\n", "jsonl", r": no examples"),
    # ASSIN 2 XML
    ("assin2_latin1", ".xml", lambda: latin1(assin2_xml()), "assin2", r":4: invalid XML .*not UTF-8 text"),
    ("assin2_binary", ".xml", lambda: binary_appended(assin2_xml()), "assin2", r":\d+: invalid XML"),
    ("assin2_empty", ".xml", lambda: b"", "assin2", r": no examples"),
    ("assin2_no_pairs", ".xml", lambda: "".join(assin2_xml().splitlines(True)[:2] + ["</entailment-corpus>\n"])
     .encode(), "assin2", r": no examples \(no <pair> elements\)"),
    ("assin2_no_entailment", ".xml", lambda: assin2_xml().replace('entailment="Entailment" id="2"', 'id="2"').encode(),
     "assin2", r": pair 2 \(id=2, line 7\): field entailment"),
    ("assin2_no_hypothesis", ".xml", lambda: re.sub(r"<h>[^<]*</h>", "<h></h>", assin2_xml(), count=1).encode(),
     "assin2", r": pair 1 \(id=1, line 3\): field <h>"),
    ("assin2_bad_similarity", ".xml", lambda: assin2_xml().replace('similarity="4.8"', 'similarity="high"').encode(),
     "assin2_similarity", r": pair 2 \(id=2, line 7\): field similarity: 'high'"),
    # CoNLL (LeNER-Br)
    ("conll_latin1", ".conll", lambda: latin1(conll_text()), "conll", "nonascii"),
    ("conll_binary", ".conll", lambda: binary_appended(conll_text()), "conll", "last"),
    ("conll_empty", ".conll", lambda: b"", "conll", r": no examples"),
    ("conll_blank_only", ".conll", lambda: b"\n\n-DOCSTART- O\n\n", "conll", r": no examples"),
    ("conll_no_tag", ".conll", lambda: (conll_text() + "palavra\n").encode(), "conll", "last_expected"),
    # Character-offset JSON (MiniHAREM)
    ("offsets_latin1", ".json", lambda: latin1(dumps(harem_documents())), "offsets", r":1: not UTF-8 text"),
    ("offsets_binary", ".json", lambda: binary_appended(dumps(harem_documents())), "offsets",
     r":1: (binary data|not UTF-8 text)"),
    ("offsets_empty", ".json", lambda: b"", "offsets", r":1: invalid JSON"),
    ("offsets_empty_list", ".json", lambda: b"[]", "offsets", r": no examples"),
    ("offsets_not_a_list", ".json", lambda: b'{"doc_text": "x"}', "offsets", r": expected a list of documents"),
    ("offsets_no_label", ".json", lambda: dumps(_set(harem_documents(), [1, "entities", 0, "label"], drop=True))
     .encode(), "offsets", r": document 2 \(doc_id [^)]+\): entities\[0\]: field 'label'.* got nothing"),
    ("offsets_start_is_string", ".json",
     lambda: dumps(_set(harem_documents(), [0, "entities", 2, "start_offset"], "12")).encode(), "offsets",
     r": document 1 \(doc_id [^)]+\): entities\[2\]: field 'start_offset' .*needs an integer, got str '12'"),
    ("offsets_entities_dict", ".json", lambda: dumps(_set(harem_documents(), [2, "entities"], {"a": 1})).encode(),
     "offsets", r": document 3 \(doc_id [^)]+\): field 'entities': needs a list, got a dict"),
    ("offsets_no_text", ".json", lambda: dumps(_set(harem_documents(), [0, "doc_text"], drop=True)).encode(),
     "offsets", r": document 1 \(doc_id [^)]+\): field 'doc_text' \(or 'text'\): needs a string, got nothing"),
    ("offsets_bad_json_line", ".json",
     lambda: "\n".join(dumps(d) for d in harem_documents()).encode() + b'\n{"doc_text": \n', "offsets",
     r":4: invalid JSON line"),
    # SQuAD v1.1
    ("squad_latin1", ".json", lambda: latin1(dumps(squad_json())), "squad", r":1: not UTF-8 text .*0xe9"),
    ("squad_binary", ".json", lambda: binary_appended(dumps(squad_json())), "squad",
     r":1: (binary data|not UTF-8 text)"),
    ("squad_empty", ".json", lambda: b"", "squad", r":1: invalid JSON"),
    ("squad_no_data", ".json", lambda: dumps(_set(squad_json(), ["data"], drop=True)).encode(), "squad",
     r": field 'data': needs a list of articles, got nothing"),
    ("squad_empty_data", ".json", lambda: dumps(_set(squad_json(), ["data"], [])).encode(), "squad",
     r": no examples"),
    ("squad_answers_not_list", ".json", lambda: dumps(_set(squad_json(), QA + ["answers"], {"text": "x"})).encode(),
     "squad", r": data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id \w+\)\.answers: needs a list, got a dict"),
    ("squad_answer_start_string", ".json",
     lambda: dumps(_set(squad_json(), QA + ["answers", 1, "answer_start"], "177")).encode(), "squad",
     r": data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id \w+\)\.answers\[1\]\.answer_start: needs an integer.*got a str"),
    ("squad_no_question", ".json", lambda: dumps(_set(squad_json(), QA + ["question"], drop=True)).encode(),
     "squad", r": data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question: needs a string, got nothing"),
    ("squad_no_context", ".json",
     lambda: dumps(_set(squad_json(), ["data", 0, "paragraphs", 1, "context"], drop=True)).encode(), "squad",
     r": data\[0\]\.paragraphs\[1\]\.context: needs a string"),
    ("squad_qas_string", ".json", lambda: dumps(_set(squad_json(), ["data", 0, "paragraphs", 1, "qas"], "q"))
     .encode(), "squad", r": data\[0\]\.paragraphs\[1\]\.qas: needs a list, got a str"),
    # Pretraining corpus
    ("corpus_latin1", ".txt", lambda: latin1(book_text()), "corpus", r":62: not UTF-8 text .*0xe9"),
    ("corpus_binary", ".txt", lambda: binary_appended(book_text()), "corpus", r":63: (binary data|not UTF-8)"),
    ("corpus_empty", ".txt", lambda: b"\n \n", "corpus", r": no examples"),
]


def _tokenizer():
    from keras_bert.tokenization import BertTokenizer

    return BertTokenizer(_need(VOCAB))


def _read(kind, path):
    if kind in ("tsv", "csv", "jsonl"):
        return read_text_examples(path, file_format=kind)
    if kind == "assin2":
        return read_assin2(path)
    if kind == "assin2_similarity":
        return read_assin2(path, task="similarity")
    if kind == "conll":
        return read_conll(path)
    if kind == "offsets":
        return _read_offset_documents(path)
    if kind == "squad":
        return read_squad_records(path)
    if kind == "corpus":
        return read_documents([path], _tokenizer())
    raise AssertionError(kind)


@pytest.mark.parametrize("name,suffix,make,kind,expected", CASES, ids=[c[0] for c in CASES])
def test_broken_file_names_file_and_place(tmp_path, name, suffix, make, kind, expected):
    data = make()
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    if expected in ("nonascii", "last", "last_expected"):  # CoNLL: the line depends on the slice.
        text = data.decode("utf-8", errors="replace")
        line = {"nonascii": lambda: _first_nonascii_line(text), "last": lambda: data[:-len(BINARY)].count(b"\n") + 1,
                "last_expected": lambda: len(text.splitlines())}[expected]()
        expected = {"nonascii": rf":{line}: not UTF-8 text", "last": rf":{line}: (binary data|not UTF-8 text)",
                    "last_expected": rf":{line}: expected 'token tag'"}[expected]
    with pytest.raises(DataError) as caught:
        _read(kind, str(path))
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert re.match(re.escape(str(path)) + expected, message), message


BOM_CASES = [
    ("tsv", ".tsv", sst2_tsv, "tsv"),
    ("csv", ".csv", sst2_csv, "csv"),
    ("jsonl", ".jsonl", sst2_jsonl, "jsonl"),
    ("assin2", ".xml", assin2_xml, "assin2"),
    ("conll", ".conll", conll_text, "conll"),
    ("offsets", ".json", lambda: dumps(harem_documents()), "offsets"),
    ("squad", ".json", lambda: dumps(squad_json()), "squad"),
    ("corpus", ".txt", book_text, "corpus"),
]


def _comparable(examples):
    if hasattr(examples, "texts_a"):
        return examples.texts_a, examples.texts_b, examples.labels, examples.label_list
    return examples


@pytest.mark.parametrize("name,suffix,make,kind", BOM_CASES, ids=[c[0] for c in BOM_CASES])
def test_utf8_bom_is_accepted(tmp_path, name, suffix, make, kind):
    text = make()
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"bom{suffix}"
    plain.write_bytes(text.encode("utf-8"))
    marked.write_bytes(bom(text))
    expected = _comparable(_read(kind, str(plain)))
    assert expected and _comparable(_read(kind, str(marked))) == expected


def test_harem_with_bom_gives_the_same_examples(tmp_path):
    text = dumps(harem_documents())
    plain, marked = tmp_path / "plain.json", tmp_path / "bom.json"
    plain.write_text(text, encoding="utf-8")
    marked.write_bytes(bom(text))
    tokenizer = _tokenizer()
    a, b = read_harem(str(plain), tokenizer), read_harem(str(marked), tokenizer)
    assert len(a) and (a.token_ids, a.labels, a.label_list) == (b.token_ids, b.labels, b.label_list)


def test_corpus_replace_mode_counts_bad_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(latin1(book_text()))
    from keras_bert.data import PretrainingStats

    stats = PretrainingStats()
    assert read_documents([str(path)], _tokenizer(), stats, invalid_utf8="replace")
    assert stats.skipped["invalid_utf8_line"] == 1


# --- End to end: python -m training.finetune, exit status 2 and one `error:` line ---
def _sst2_csv_file(path, count=64):
    rows = [line.rstrip("\n").split("\t") for line in _lines(SST2, count + 1)[1:]]
    path.write_text("sentence,label\n" + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{label}\n' for t, label in rows),
                    encoding="utf-8")
    return path


JOB_CASES = {
    "latin1_dev": (lambda p: p.write_bytes(latin1("sentence,label\ngood film,1\ncafé society,0\n")),
                   r"dev\.csv:3: not UTF-8 text"),
    "header_only_dev": (lambda p: p.write_text("sentence,label\n", encoding="utf-8"), r"dev\.csv: no examples"),
    "binary_dev": (lambda p: p.write_bytes(b"sentence,label\ngood film,1\n" + BINARY),
                   r"dev\.csv:3: (binary data|not UTF-8 text)"),
}


@pytest.mark.parametrize("problem", sorted(JOB_CASES))
def test_finetune_job_one_error_line(tiny_init, tmp_path, problem):
    train = _sst2_csv_file(tmp_path / "train.csv")
    dev = tmp_path / "dev.csv"
    write, expected = JOB_CASES[problem]
    write(dev)
    result = run_job("training.finetune", "--task", "classification", "--init", tiny_init, "--output-dir",
                     tmp_path / "out", "--train-file", train, "--validation-file", dev, "--text-column", "sentence",
                     *LOOP, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert "[data] " in result.stdout and "nothing skipped" in result.stdout  # The training file's summary.
