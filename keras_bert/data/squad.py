"""SQuAD v1.1 reader: doc_stride windows with character-offset answer mapping."""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_bert.data.errors import DataError, SkipCounter, read_text


@dataclasses.dataclass
class SquadWindow:
    """Metadata of one packed window, to map predicted positions back to text.

    Args:
        question_id: str, the SQuAD question id.
        context: str, the full context paragraph.
        token_char_spans: dict[int, tuple[int, int]], packed position -> (start, end)
            character offsets in `context` (only context pieces of this window).
        answers: list[str], gold answer texts (all annotators).
    """

    question_id: str
    context: str
    token_char_spans: dict
    answers: list


def _char_offsets(text, byte_starts, byte_ends):
    """Converts UTF-8 byte offsets of pieces into character offsets."""
    char_of_byte = np.zeros(len(text.encode("utf-8")) + 1, np.int64)
    position = 0
    for index, char in enumerate(text):
        width = len(char.encode("utf-8"))
        char_of_byte[position : position + width] = index
        position += width
    char_of_byte[position] = len(text)
    return [int(char_of_byte[s]) for s in byte_starts], [int(char_of_byte[e - 1]) + 1 for e in byte_ends]


def read_squad_records(path):
    """Reads SQuAD v1.1 JSON into `(question_id, question, context, answers)` records.

    Args:
        path: str, e.g. ../shared/data/squad/dev-v1.1.json.

    Returns:
        list of tuples; `answers` is a list of `{"text", "answer_start"}` dicts (may be empty).
    """
    path = os.fspath(path)
    try:
        root = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: invalid JSON ({error.msg}, column {error.colno})") from None

    def need(value, kinds, where, what):
        if not isinstance(value, kinds) or isinstance(value, bool):
            got = "nothing" if value is _MISSING else f"a {type(value).__name__} {value!r:.40}"
            raise DataError(f"{path}: {where}: needs {what}, got {got}")
        return value

    if not isinstance(root, dict):
        raise DataError(f"{path}: not SQuAD JSON: needs an object with a 'data' list, got a {type(root).__name__}")
    articles = need(root.get("data", _MISSING), list, "field 'data'", "a list of articles")
    records = []
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        need(article, dict, where, "an object")
        for p, paragraph in enumerate(need(article.get("paragraphs", _MISSING), list, f"{where}.paragraphs",
                                           "a list")):
            where = f"data[{a}].paragraphs[{p}]"
            need(paragraph, dict, where, "an object")
            context = need(paragraph.get("context", _MISSING), str, f"{where}.context", "a string")
            for q, qa in enumerate(need(paragraph.get("qas", _MISSING), list, f"{where}.qas", "a list")):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                need(qa, dict, where, "an object")
                question = need(qa.get("question", _MISSING), str, f"{where}.question", "a string")
                question_id = need(qa.get("id", _MISSING), (str, int), f"{where}.id", "a string")
                where = f"{where} (id {question_id})"
                answers = need(qa.get("answers", []), list, f"{where}.answers", "a list")
                for k, answer in enumerate(answers):
                    need(answer, dict, f"{where}.answers[{k}]", "an object")
                    need(answer.get("text", _MISSING), str, f"{where}.answers[{k}].text", "a string")
                    need(answer.get("answer_start", _MISSING), int, f"{where}.answers[{k}].answer_start",
                         "an integer (a character offset)")
                records.append((str(question_id), question, context, answers))
    if not records:
        raise DataError(f"{path}: no examples (no questions)")
    return records


_MISSING = object()


def read_squad(path, tokenizer, **window_kwargs):
    """Reads SQuAD v1.1 JSON into packed windows with start/end labels (see `squad_windows`)."""
    return squad_windows(read_squad_records(path), tokenizer, source=os.fspath(path), **window_kwargs)


def squad_windows(
    records,
    tokenizer,
    *,
    sequence_length=384,
    doc_stride=128,
    max_query_length=64,
    skip_mismatched_answers=True,
    source="<records>",
):
    """Packs question/context records into doc_stride windows with start/end labels.

    Args:
        records: list of `(question_id, question, context, answers)`; `answers` is a list of
            `{"text", "answer_start"}` dicts (the first one is the training target).
        tokenizer: keras_bert.tokenization.BertTokenizer.
        sequence_length: int, packed length.
        doc_stride: int, pieces between the starts of consecutive context windows.
        max_query_length: int, question pieces kept.
        skip_mismatched_answers: bool. An answer whose `answer_start` does not
            point at its text in the context is skipped and counted
            (`answer_mismatch`) when True, else raises DataError.
        source: str. Named in errors.

    Returns:
        tuple (features, windows, skipped): features = dict of numpy arrays
        ("token_ids", "segment_ids", "padding_mask" int32 [N, S], "start_positions",
        "end_positions" int32 [N]); windows = list[SquadWindow] aligned with rows;
        skipped = SkipCounter.
    """
    skipped = SkipCounter()
    context_index, contexts = {}, []
    for _, _, context, _ in records:
        if context not in context_index:
            context_index[context] = len(contexts)
            contexts.append(context)
    context_ids, starts, ends = [], [], []
    for begin in range(0, len(contexts), 512):
        ids, s, e = tokenizer.tokenize_with_offsets(tf.constant(contexts[begin : begin + 512]))
        context_ids += ids.to_list()
        for text, byte_starts, byte_ends in zip(contexts[begin : begin + 512], s.to_list(), e.to_list()):
            char_starts, char_ends = _char_offsets(text, byte_starts, byte_ends)
            starts.append(char_starts)
            ends.append(char_ends)
    question_ids = []
    question_texts = [question for _, question, _, _ in records]
    for begin in range(0, len(question_texts), 4096):
        question_ids += tokenizer(tf.constant(question_texts[begin : begin + 4096])).to_list()
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows = {k: [] for k in ("token_ids", "segment_ids", "padding_mask", "start_positions", "end_positions")}
    windows = []
    for (question_id, _, context, answers), query in zip(records, question_ids):
        index = context_index[context]
        query = query[:max_query_length]
        answer_texts = [a["text"] for a in answers]
        answer_start_piece = answer_end_piece = None
        if answers:
            answer = answers[0]
            char_start = int(answer["answer_start"])
            char_end = char_start + len(answer["text"])
            if context[char_start:char_end] != answer["text"]:
                if not skip_mismatched_answers:
                    raise DataError(f"{source}: question {question_id}: answer {answer['text']!r} not at "
                                    f"answer_start {char_start} of its context")
                skipped["answer_mismatch"] += 1
                continue
            piece_starts, piece_ends = starts[index], ends[index]
            overlapping = [i for i, (s, e) in enumerate(zip(piece_starts, piece_ends)) if s < char_end and e > char_start]
            if not overlapping:
                skipped["answer_without_pieces"] += 1
                continue
            answer_start_piece, answer_end_piece = overlapping[0], overlapping[-1]
        pieces = context_ids[index]
        max_context = sequence_length - len(query) - 3
        window_start = 0
        while True:
            window_end = min(window_start + max_context, len(pieces))
            offset = len(query) + 2
            ids = [cls_id] + query + [sep_id] + pieces[window_start:window_end] + [sep_id]
            segments = [0] * offset + [1] * (window_end - window_start + 1)
            padding = sequence_length - len(ids)
            start_position = end_position = 0
            if (
                answer_start_piece is not None
                and answer_start_piece >= window_start
                and answer_end_piece < window_end
            ):
                start_position = answer_start_piece - window_start + offset
                end_position = answer_end_piece - window_start + offset
            rows["token_ids"].append(ids + [pad_id] * padding)
            rows["segment_ids"].append(segments + [0] * padding)
            rows["padding_mask"].append([1] * len(ids) + [0] * padding)
            rows["start_positions"].append(start_position)
            rows["end_positions"].append(end_position)
            spans = {
                offset + i - window_start: (starts[index][i], ends[index][i])
                for i in range(window_start, window_end)
            }
            windows.append(SquadWindow(question_id, context, spans, answer_texts))
            if window_end >= len(pieces):
                break
            window_start += doc_stride
    features = {k: np.asarray(v, np.int32).reshape((-1, sequence_length) if k.endswith(("_ids", "_mask")) else -1)
                for k, v in rows.items()}
    return features, windows, skipped


def squad_dataset(features, batch_size, *, shuffle=False, seed=None, drop_remainder=False):
    """Batches SQuAD features from `read_squad`.

    Args:
        features: dict of numpy arrays from `read_squad`.
        batch_size: int.
        shuffle: bool (keep False for evaluation: rows align with windows).
        seed: int or None.
        drop_remainder: bool.

    Returns:
        tf.data.Dataset of (x, {"start_positions", "end_positions"}), int32.
    """
    x = {k: features[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    y = {k: features[k] for k in ("start_positions", "end_positions")}
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(features["token_ids"]), seed=seed)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
