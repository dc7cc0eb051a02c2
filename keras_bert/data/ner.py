"""NER readers: CoNLL `token tag` files and HAREM character-offset JSON, word-piece aligned."""

import bisect
import dataclasses
import io
import json
import os
import typing

import numpy as np
import tensorflow as tf

from keras_bert.data.batching import batch_packed_examples
from keras_bert.data.errors import DataError, SkipCounter, read_text

IGNORE_LABEL = -1
_SCHEME_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES", "BILOU": "BILU"}


@dataclasses.dataclass
class NerExamples:
    """Word-piece aligned NER examples.

    Args:
        token_ids: list[list[int]], packed ids ([CLS] pieces [SEP]), unpadded.
        labels: list[list[int]], same lengths; -1 where no label applies.
        label_list: list[str], tag names (index = id).
        skipped: SkipCounter, repairs/skips by reason (e.g. truncated sentences).
        source: str, the file read.
        documents: list[int] or None, the document of each window (None: each row is its own document).
        positions: list[list[int]] or None, per window and piece, the piece's position in its document
            (-1 for [CLS]/[SEP]).
        max_context: list[list[bool]] or None, per window and piece, whether this window is the piece's
            max-context window (SQuAD's rule); a labelled piece has exactly one.
    """

    token_ids: list
    labels: list
    label_list: list
    skipped: SkipCounter
    source: str = ""
    documents: typing.Optional[list] = None
    positions: typing.Optional[list] = None
    max_context: typing.Optional[list] = None

    def __len__(self):
        return len(self.token_ids)

    def select(self, count):
        """Keeps the first `count` windows (in place)."""
        for name in ("token_ids", "labels", "documents", "positions", "max_context"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name)[:count])


def read_conll(path, *, scheme="IOB2", token_column=0, tag_column=-1):
    """Reads a CoNLL-style file: one `token ... tag` per line, blank line between sentences.

    Args:
        path: str, e.g. ../shared/data/portuguese/ner_conll/lener_br/dev.conll.
        scheme: "IOB1", "IOB2", "BIOES" or "BILOU"; tags are validated against it.
        token_column: int, column of the token.
        tag_column: int, column of the tag.

    Returns:
        list of (words: list[str], tags: list[str], first_line: int).
    """
    path = os.fspath(path)
    if scheme not in _SCHEME_PREFIXES:
        raise ValueError(f"scheme must be one of {sorted(_SCHEME_PREFIXES)}, got {scheme!r}")
    prefixes = _SCHEME_PREFIXES[scheme]
    sentences, words, tags, first = [], [], [], None
    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags, first))
            words, tags, first = [], [], None
            continue
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: expected 'token tag', got {line.strip()!r}")
        try:
            token, tag = fields[token_column], fields[tag_column]
        except IndexError:
            raise DataError(f"{path}:{number}: {len(fields)} columns, no token column {token_column} or tag "
                            f"column {tag_column}") from None
        if tag != "O" and (len(tag) < 3 or tag[0] not in prefixes or tag[1] != "-"):
            raise DataError(f"{path}:{number}: tag {tag!r} is not a valid {scheme} tag")
        if scheme == "IOB2" and tag.startswith("I-"):
            previous = tags[-1] if tags else "O"
            if previous == "O" or previous[2:] != tag[2:]:
                raise DataError(
                    f"{path}:{number}: IOB2 tag {tag!r} does not continue {previous!r} "
                    "(use scheme='IOB1' for IOB1 files)"
                )
        if first is None:
            first = number
        words.append(token)
        tags.append(tag)
    if words:
        sentences.append((words, tags, first))
    if not sentences:
        raise DataError(f"{path}: no examples (no 'token tag' lines)")
    return sentences


def _tokenize_words(tokenizer, words, chunk_size=8192):
    pieces = []
    for start in range(0, len(words), chunk_size):
        pieces.extend(tokenizer(tf.constant(words[start : start + chunk_size])).to_list())
    return pieces


def align_word_labels(sentences, tokenizer, label_list, sequence_length, source="", skipped=None):
    """Tokenizes words into pieces and labels the first piece of each word.

    Args:
        sentences: list of (words, tags, first_line) as from `read_conll`.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        label_list: list[str], tag names (index = id).
        sequence_length: int, packed length; longer sentences are truncated
            (counted as `truncated_sentence`).
        source: str, file name for errors.
        skipped: SkipCounter or None, updated in place.

    Returns:
        NerExamples.
    """
    skipped = skipped if skipped is not None else SkipCounter()
    index = {tag: i for i, tag in enumerate(label_list)}
    flat_words = [w for words, _, _ in sentences for w in words]
    flat_pieces = _tokenize_words(tokenizer, flat_words)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    all_ids, all_labels = [], []
    position = 0
    for words, tags, first_line in sentences:
        ids, labels = [cls_id], [IGNORE_LABEL]
        truncated = False
        for offset, (word, tag) in enumerate(zip(words, tags)):
            pieces = flat_pieces[position + offset]
            if tag not in index:
                raise DataError(f"{source}:{first_line + offset}: tag {tag!r} not in label list {label_list}")
            if not pieces:
                skipped["word_without_pieces"] += 1
                continue
            if len(ids) + len(pieces) > sequence_length - 1:
                truncated = True
                break
            ids.extend(pieces)
            labels.extend([index[tag]] + [IGNORE_LABEL] * (len(pieces) - 1))
        position += len(words)
        if truncated:
            skipped["truncated_sentence"] += 1
        ids.append(sep_id)
        labels.append(IGNORE_LABEL)
        all_ids.append(ids)
        all_labels.append(labels)
    return NerExamples(all_ids, all_labels, list(label_list), skipped, source)


def labels_from_tags(sentences):
    """Builds a label list ("O" first, then sorted tags) from read sentences.

    Args:
        sentences: list of (words, tags, first_line).

    Returns:
        list[str].
    """
    tags = {t for _, sentence_tags, _ in sentences for t in sentence_tags}
    return ["O"] + sorted(tags - {"O"})


def _read_offset_documents(path):
    """Documents of character-offset NER JSON, normalized to `doc_text` / `start_offset` / `end_offset` keys."""
    text = read_text(path)
    try:
        documents = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            raise DataError(f"{path}:{error.lineno}: invalid JSON ({error.msg}, column {error.colno})") from None
        documents = []  # JSON lines
        for number, line in enumerate(io.StringIO(text, newline=None), start=1):
            if line.strip():
                try:
                    documents.append(json.loads(line))
                except json.JSONDecodeError as line_error:
                    raise DataError(f"{path}:{number}: invalid JSON line ({line_error.msg}, column "
                                    f"{line_error.colno})") from None
    if not isinstance(documents, list):
        raise DataError(f"{path}: expected a list of documents, got a {type(documents).__name__}")
    if not documents:
        raise DataError(f"{path}: no examples (no documents)")
    normalized = []
    for number, doc in enumerate(documents, start=1):
        where = f"{path}: document {number}"
        if not isinstance(doc, dict):
            raise DataError(f"{where}: expected a JSON object, got a {type(doc).__name__}")
        if doc.get("doc_id") is not None:
            where += f" (doc_id {doc['doc_id']})"
        key = "doc_text" if "doc_text" in doc else "text"
        if not isinstance(doc.get(key), str):
            raise DataError(f"{where}: field 'doc_text' (or 'text'): needs a string, got "
                            f"{'nothing' if key not in doc else type(doc[key]).__name__}")
        raw_entities = doc.get("entities", [])
        if not isinstance(raw_entities, list):
            raise DataError(f"{where}: field 'entities': needs a list, got a {type(raw_entities).__name__}")
        entities = []
        for k, entity in enumerate(raw_entities):
            if not isinstance(entity, dict):
                raise DataError(f"{where}: entities[{k}]: expected a JSON object, got a {type(entity).__name__}")
            offsets = {}
            for name, alias in (("start_offset", "start"), ("end_offset", "end")):
                field = name if name in entity else alias
                value = entity.get(field)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise DataError(f"{where}: entities[{k}]: field '{name}' (or '{alias}'): needs an integer, "
                                    f"got {'nothing' if field not in entity else f'{type(value).__name__} {value!r:.40}'}")
                offsets[name] = value
            label = entity.get("label")
            if not isinstance(label, str) or not label:
                raise DataError(f"{where}: entities[{k}]: field 'label': needs a non-empty string, got "
                                f"{'nothing' if 'label' not in entity else f'{type(label).__name__} {label!r:.40}'}")
            entities.append(dict(entity, **offsets, label=label))
        normalized.append(dict(doc, doc_text=doc[key], entities=entities))
    return normalized


def document_windows(labels, window, doc_stride):
    """Overlapping `[begin, end)` windows of a document's pieces, cut at word starts.

    Args:
        labels: list[int], the document's piece labels; -1 marks a "##" continuation (no word start).
        window: int, most pieces a window holds (the sequence length less [CLS] and [SEP]).
        doc_stride: int, pieces between the starts of consecutive windows; at most half a window, so
            that windows overlap.

    Returns:
        list of (begin, end); together they cover every labelled piece.
    """
    count = len(labels)
    stride = max(1, min(doc_stride, window // 2))
    windows, begin = [], 0
    while begin < count:
        end = min(begin + window, count)
        # Do not split a word: move the end back to a word start.
        while end < count and end > begin + 1 and labels[end] == IGNORE_LABEL:
            end -= 1
        windows.append((begin, end))
        if end == count:
            break
        following = min(begin + stride, end)
        while following > begin and labels[following] == IGNORE_LABEL:
            following -= 1
        if following == begin:  # a word longer than the stride: start at the next word
            following += 1
            while following < count and labels[following] == IGNORE_LABEL:
                following += 1
        begin = following
    return windows


def read_harem(path, tokenizer, *, classes=None, sequence_length=128, doc_stride=128):
    """Reads character-offset NER JSON (HAREM's layout) into IOB2 word-piece labels.

    A list of documents (or JSON lines), each `{"doc_text" or "text": str, "entities": [{"start_offset" or
    "start": int, "end_offset" or "end": int, "label": str}, ...]}`, offsets in characters, end exclusive.
    The first piece of each word is labelled (B-X for the first word of an entity,
    I-X for the next ones, O outside); "##" pieces and specials get -1. Documents are
    cut at word starts into overlapping windows of up to `sequence_length - 2` pieces, `doc_stride` apart
    (see `document_windows`); every window keeps its labels (for training), and `max_context` marks the
    one window each piece is scored from (see `NerExamples`).

    Args:
        path: str, e.g. ../shared/data/portuguese/harem_bertimbau/MiniHAREM-selective.json.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        classes: list[str], str path to a file of classes (one a line), or None: the sorted entity labels
            of this file. Entities of other classes are skipped and counted.
        sequence_length: int, packed length.
        doc_stride: int, pieces between the starts of consecutive windows (at most half a window).

    Returns:
        NerExamples with label_list ["O", "B-C1", "I-C1", ...].
    """
    path = os.fspath(path)
    documents = _read_offset_documents(path)
    if isinstance(classes, (str, os.PathLike)):
        classes_path = os.fspath(classes)
        classes = [c.strip() for c in read_text(classes_path).splitlines() if c.strip()]
        if not classes:
            raise DataError(f"{classes_path}: no entity classes")
    if classes is None:
        classes = sorted({entity["label"] for doc in documents for entity in doc["entities"]})
    label_list = ["O"] + [f"{p}-{c}" for c in classes for p in ("B", "I")]
    index = {tag: i for i, tag in enumerate(label_list)}
    skipped = SkipCounter()
    texts = [doc["doc_text"] for doc in documents]
    ids, starts, _ = tokenizer.tokenize_with_offsets(tf.constant(texts))
    ids, starts = ids.to_list(), starts.to_list()
    vocabulary = tokenizer.get_vocabulary()
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    all_ids, all_labels, all_documents, all_positions, all_max_context = [], [], [], [], []
    window_bounds, first_row = [], 0
    for number, doc in enumerate(documents, start=1):
        text = doc["doc_text"]
        # char offset -> byte offset
        byte_of_char = np.cumsum([0] + [len(c.encode("utf-8")) for c in text])
        spans = []
        for entity in doc.get("entities", []):
            start, end, label = entity["start_offset"], entity["end_offset"], entity["label"]
            if not 0 <= start < end <= len(text):
                raise DataError(f"{path}: document {number} ({doc.get('doc_id')}): entity "
                                f"{entity.get('entity_id')} offsets [{start}, {end}) outside its {len(text)} characters")
            if text[start:end] != entity.get("text", text[start:end]):
                raise DataError(f"{path}: document {number} ({doc.get('doc_id')}): entity "
                                f"{entity.get('entity_id')} text does not match its offsets")
            if label not in classes:
                skipped["entity_class_not_in_classes"] += 1
                continue
            spans.append((int(byte_of_char[start]), int(byte_of_char[end]), label))
        spans.sort()
        span_starts = [s[0] for s in spans]
        doc_ids, doc_labels = ids[number - 1], []
        previous_span = None
        for token_id, start in zip(doc_ids, starts[number - 1]):
            if vocabulary[token_id].startswith("##"):
                doc_labels.append(IGNORE_LABEL)
                continue
            k = bisect.bisect_right(span_starts, start) - 1
            if k >= 0 and spans[k][0] <= start < spans[k][1]:
                prefix = "I" if previous_span == k else "B"
                doc_labels.append(index[f"{prefix}-{spans[k][2]}"])
                previous_span = k
            else:
                doc_labels.append(index["O"])
                previous_span = None
        for begin, end in document_windows(doc_labels, sequence_length - 2, doc_stride):
            all_ids.append([cls_id] + doc_ids[begin:end] + [sep_id])
            all_labels.append([IGNORE_LABEL] + doc_labels[begin:end] + [IGNORE_LABEL])
            all_documents.append(number - 1)
            all_positions.append([-1] + list(range(begin, end)) + [-1])
            window_bounds.append((begin, end))
        # Max context (SQuAD): a piece's prediction comes from the window where
        # min(left context, right context) + 0.01 * window length is highest (the first on ties).
        best = {}
        for row in range(first_row, len(all_ids)):
            begin, end = window_bounds[row]
            for position in range(begin, end):
                score = min(position - begin, end - 1 - position) + 0.01 * (end - begin)
                if position not in best or score > best[position][0]:
                    best[position] = (score, row)
        for row in range(first_row, len(all_ids)):
            all_max_context.append([p >= 0 and best[p][1] == row for p in all_positions[row]])
        first_row = len(all_ids)
    if not all_ids:
        raise DataError(f"{path}: no examples (no document has text with word pieces)")
    return NerExamples(all_ids, all_labels, label_list, skipped, path, all_documents, all_positions, all_max_context)


def ner_examples_dataset(
    examples,
    *,
    sequence_length=128,
    batch_size=32,
    shuffle=False,
    seed=None,
    bucket_boundaries=None,
    pad_to_longest=False,
    pad_token_id=0,
    drop_remainder=False,
):
    """Turns aligned NER examples into batches.

    Args:
        examples: NerExamples.
        sequence_length: int, padded length (examples are already truncated to it).
        batch_size: int.
        shuffle: bool.
        seed: int or None.
        bucket_boundaries: list[int] or None, length buckets.
        pad_to_longest: bool, pad batches to their longest example.
        pad_token_id: int, id of [PAD].
        drop_remainder: bool.

    Returns:
        tf.data.Dataset of (x, labels): x = {"token_ids", "segment_ids",
        "padding_mask"} int32 [B, S]; labels int32 [B, S] with -1 where unlabelled.
    """
    count = len(examples)
    token_ids = np.full((count, sequence_length), pad_token_id, np.int32)
    labels = np.full((count, sequence_length), IGNORE_LABEL, np.int32)
    mask = np.zeros((count, sequence_length), np.int32)
    for row, (ids, tags) in enumerate(zip(examples.token_ids, examples.labels)):
        if len(ids) > sequence_length:
            raise ValueError(f"example {row} has {len(ids)} pieces > sequence_length {sequence_length}")
        token_ids[row, : len(ids)] = ids
        labels[row, : len(ids)] = tags
        mask[row, : len(ids)] = 1
    x = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": mask}
    dataset = tf.data.Dataset.from_tensor_slices((x, labels))
    if shuffle:
        dataset = dataset.shuffle(max(count, 1), seed=seed)
    dataset = batch_packed_examples(
        dataset,
        batch_size,
        bucket_boundaries=bucket_boundaries,
        pad_to_longest=pad_to_longest,
        sequence_label=True,
        pad_token_id=pad_token_id,
        drop_remainder=drop_remainder,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def conll_dataset(path, tokenizer, *, scheme="IOB2", label_list=None, sequence_length=128, **dataset_kwargs):
    """Reads a CoNLL NER file straight into batches.

    Args:
        path: str, the CoNLL file.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        scheme: "IOB1", "IOB2" or "BILOU".
        label_list: list[str] or None (None = from this file's tags, "O" first).
        sequence_length: int.
        **dataset_kwargs: passed to `ner_examples_dataset`.

    Returns:
        tuple (tf.data.Dataset, NerExamples).
    """
    sentences = read_conll(path, scheme=scheme)
    label_list = label_list or labels_from_tags(sentences)
    examples = align_word_labels(sentences, tokenizer, label_list, sequence_length, source=os.fspath(path))
    dataset = ner_examples_dataset(
        examples, sequence_length=sequence_length, pad_token_id=tokenizer.pad_token_id, **dataset_kwargs
    )
    return dataset, examples
