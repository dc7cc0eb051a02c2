"""Text classification / regression readers (TSV, CSV, JSON lines; GLUE; ASSIN 2)."""

import csv
import dataclasses
import io
import os
import xml.etree.ElementTree as ElementTree

import tensorflow as tf

from keras_bert.data.batching import batch_packed_examples
from keras_bert.data.errors import DataError, SkipCounter, no_examples, read_json_lines, read_text
from keras_bert.tokenization import BertPacker


@dataclasses.dataclass
class TextExamples:
    """Texts and labels read from a file, before tokenization.

    Args:
        texts_a: list[str], first segments.
        texts_b: list[str] or None, second segments (pairs).
        labels: list of int (class ids) or float (regression targets).
        label_list: list[str] or None, class names (index = id); None for regression.
        skipped: SkipCounter, rows skipped by reason.
        source: str, the file read.
    """

    texts_a: list
    texts_b: list
    labels: list
    label_list: list
    skipped: SkipCounter
    source: str = ""

    def __len__(self):
        return len(self.texts_a)


def _rows(path, file_format, has_header, delimiter):
    """Yields (line_number, row) with row a dict (header/JSON) or a list.

    The file must be UTF-8 (a leading BOM is dropped); other bytes are a DataError naming line and byte.
    """
    if file_format == "jsonl":
        yield from read_json_lines(path)
        return
    text = read_text(path)
    delimiter = delimiter or ("\t" if file_format == "tsv" else ",")
    handle = io.StringIO(text, newline="")
    if file_format == "tsv":
        # GLUE TSVs are not quoted; a quote character is text.
        reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(handle, delimiter=delimiter)
    header = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{path}:{reader.line_num}: malformed {file_format.upper()} ({error})") from None
        number = reader.line_num
        if header is None and has_header:
            header = [h.strip() for h in row]
            continue
        if not row or all(not cell.strip() for cell in row):
            yield number, None
            continue
        if header is not None:
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{number}: expected {len(header)} columns ({header}), got {len(row)}"
                )
            yield number, dict(zip(header, row))
        else:
            yield number, row


def _field(path, number, row, column, what):
    """`row[column]`: a string, or a number for labels; anything else is a DataError naming line and field."""
    try:
        value = row[column]
    except (KeyError, IndexError):
        raise DataError(f"{path}:{number}: missing column {column!r}") from None
    except TypeError:
        raise DataError(f"{path}:{number}: column {column!r}: this row has no such column") from None
    kinds = (str,) if what == "text" else (str, int, float)
    if not isinstance(value, kinds) or isinstance(value, bool):
        expected = "a string" if what == "text" else "a string or a number"
        raise DataError(f"{path}:{number}: {what} column {column!r} must be {expected}, got "
                        f"{type(value).__name__} {value!r:.60}")
    return value


def read_text_examples(
    path,
    *,
    text_columns=("sentence",),
    label_column="label",
    label_list=None,
    regression=False,
    file_format=None,
    has_header=True,
    delimiter=None,
    skip_bad_rows=False,
):
    """Reads single-text or text-pair examples with labels from TSV, CSV or JSON lines.

    GLUE SST-2 (`sentence<TAB>label` with a header) is the default layout.

    Args:
        path: str, the file.
        text_columns: tuple of 1 or 2 column names (or int indices without header).
        label_column: str or int, the label column.
        label_list: list[str] or None. Class names (index = id); None collects
            the sorted distinct labels of this file. Ignored for regression.
        regression: bool, labels are floats.
        file_format: "tsv", "csv", "jsonl" or None (from the extension).
        has_header: bool, the first TSV/CSV line names the columns.
        delimiter: str or None, overrides the format's delimiter.
        skip_bad_rows: bool. False: a bad row (empty text, label not in the set,
            unparsable number) raises DataError naming file and line. True: it is
            skipped and counted in `skipped`. Empty lines are always skipped and counted.

    Returns:
        TextExamples.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if file_format is None:
        extension = os.path.splitext(path)[1].lower().lstrip(".")
        file_format = {"tsv": "tsv", "csv": "csv", "jsonl": "jsonl", "json": "jsonl", "txt": "tsv"}.get(extension)
        if file_format is None:
            raise DataError(f"{path}: cannot infer the format from the extension; pass file_format")
    if not 1 <= len(text_columns) <= 2:
        raise ValueError("text_columns must name one or two columns")
    skipped = SkipCounter()
    texts_a, texts_b, raw_labels, lines = [], [], [], []
    for number, row in _rows(path, file_format, has_header, delimiter):
        if row is None:
            skipped["empty_line"] += 1
            continue
        texts = [_field(path, number, row, c, "text").strip() for c in text_columns]
        label = _field(path, number, row, label_column, "label")
        if any(not t for t in texts):
            if skip_bad_rows:
                skipped["empty_text"] += 1
                continue
            raise DataError(f"{path}:{number}: empty text")
        texts_a.append(texts[0])
        if len(texts) == 2:
            texts_b.append(texts[1])
        raw_labels.append(label)
        lines.append(number)
    labels = []
    keep = []
    if regression:
        label_list = None
        for label, number in zip(raw_labels, lines):
            try:
                labels.append(float(label))
                keep.append(True)
            except (TypeError, ValueError):
                if not skip_bad_rows:
                    raise DataError(f"{path}:{number}: regression target {label!r} is not a number") from None
                skipped["bad_number"] += 1
                keep.append(False)
    else:
        raw_labels = [str(label).strip() for label in raw_labels]
        if label_list is None:
            label_list = sorted(set(raw_labels))
        label_list = [str(label) for label in label_list]
        index = {label: i for i, label in enumerate(label_list)}
        for label, number in zip(raw_labels, lines):
            if label in index:
                labels.append(index[label])
                keep.append(True)
            elif skip_bad_rows:
                skipped["label_not_in_set"] += 1
                keep.append(False)
            else:
                raise DataError(f"{path}:{number}: label {label!r} is not in the label set {label_list}")
    texts_a = [t for t, k in zip(texts_a, keep) if k]
    texts_b = [t for t, k in zip(texts_b, keep) if k] if texts_b else None
    if not texts_a:
        raise DataError(f"{path}: no examples" + (f" ({skipped.summary()})" if skipped else ""))
    return TextExamples(texts_a, texts_b, labels, label_list, skipped, path)


def read_assin2(path, task="entailment"):
    """Reads an ASSIN 2 XML file (pairs <t>, <h> with entailment and similarity).

    Args:
        path: str, e.g. ../shared/data/portuguese/assin2/assin2-dev.xml.
        task: "entailment" (labels None=0, Entailment=1) or "similarity" (float 1-5).

    Returns:
        TextExamples with pairs.
    """
    path = os.fspath(path)
    if task not in ("entailment", "similarity"):
        raise ValueError(f"task must be 'entailment' or 'similarity', got {task!r}")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if not data.strip():
        raise DataError(f"{path}: no examples (empty file)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        line, column = error.position
        hint = ""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as decode:
            hint = f"; not UTF-8 text ({decode.reason} at byte {decode.start})"
        raise DataError(f"{path}:{line}: invalid XML ({error}){hint}") from None
    label_list = ["None", "Entailment"]
    texts_a, texts_b, labels = [], [], []
    for number, pair in enumerate(root.iter("pair"), start=1):
        def where():
            return f"{path}: pair {number} (id={pair.get('id')}, line {_line_of(data, pair)})"

        premise, hypothesis = pair.findtext("t"), pair.findtext("h")
        for name, value in (("t", premise), ("h", hypothesis)):
            if not value or not value.strip():
                raise DataError(f"{where()}: field <{name}>: missing or empty text")
        if task == "entailment":
            value = pair.get("entailment")
            if value not in label_list:
                raise DataError(f"{where()}: field entailment: {value!r} not in {label_list}")
            labels.append(label_list.index(value))
        else:
            try:
                labels.append(float(pair.get("similarity")))
            except (TypeError, ValueError):
                raise DataError(f"{where()}: field similarity: {pair.get('similarity')!r} is not a number") from None
        texts_a.append(premise.strip())
        texts_b.append(hypothesis.strip())
    if not texts_a:
        raise DataError(f"{path}: no examples (no <pair> elements)")
    return TextExamples(
        texts_a, texts_b, labels, label_list if task == "entailment" else None, SkipCounter(), path
    )


def _line_of(data, pair):
    """The line of a <pair> in the XML bytes (ElementTree keeps none); '?' when its id is not found."""
    pair_id = pair.get("id")
    if pair_id is None:
        return "?"
    position = data.find(f'id="{pair_id}"'.encode())
    return data[:position].count(b"\n") + 1 if position >= 0 else "?"


def text_examples_dataset(
    examples,
    tokenizer,
    *,
    sequence_length=128,
    batch_size=32,
    shuffle=False,
    seed=None,
    bucket_boundaries=None,
    pad_to_longest=False,
    drop_remainder=False,
):
    """Tokenizes (in-graph, with the BertTokenizer layer) and batches text examples.

    Args:
        examples: TextExamples (from `read_text_examples` or `read_assin2`).
        tokenizer: keras_bert.tokenization.BertTokenizer.
        sequence_length: int, truncation length ([CLS]/[SEP] included).
        batch_size: int.
        shuffle: bool, shuffle examples (whole set in the buffer).
        seed: int or None, shuffle seed.
        bucket_boundaries: list[int] or None, length buckets (see `batch_packed_examples`).
        pad_to_longest: bool, pad each batch to its longest example only.
        drop_remainder: bool.

    Returns:
        tf.data.Dataset of (x, label): x = {"token_ids", "segment_ids",
        "padding_mask"} int32 [B, S]; label int32 [B] (classes) or float32 [B].
    """
    regression = examples.label_list is None
    label_dtype = tf.float32 if regression else tf.int32
    texts = (examples.texts_a,) if examples.texts_b is None else (examples.texts_a, examples.texts_b)
    labels = tf.constant(examples.labels, dtype=label_dtype)
    dataset = tf.data.Dataset.from_tensor_slices((tuple(tf.constant(t, tf.string) for t in texts), labels))
    if shuffle:
        dataset = dataset.shuffle(max(len(examples), 1), seed=seed)
    packer = BertPacker.from_tokenizer(tokenizer, sequence_length=sequence_length)

    def encode(segments, label):
        return packer(tuple(tokenizer(s) for s in segments)), label

    dataset = dataset.batch(1024).map(encode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = batch_packed_examples(
        dataset,
        batch_size,
        bucket_boundaries=bucket_boundaries,
        pad_to_longest=pad_to_longest,
        pad_token_id=tokenizer.pad_token_id,
        drop_remainder=drop_remainder,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def classification_dataset(path, tokenizer, *, reader_kwargs=None, **dataset_kwargs):
    """Reads a TSV/CSV/JSONL classification or regression file straight into batches.

    Args:
        path: str, the file.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        reader_kwargs: dict or None, passed to `read_text_examples` (columns,
            label_list, regression, ...).
        **dataset_kwargs: passed to `text_examples_dataset` (sequence_length,
            batch_size, bucket_boundaries, ...).

    Returns:
        tuple (tf.data.Dataset, TextExamples).
    """
    examples = read_text_examples(path, **(reader_kwargs or {}))
    return text_examples_dataset(examples, tokenizer, **dataset_kwargs), examples
