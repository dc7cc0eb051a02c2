"""SQuAD v1.1 reader: doc_stride windows with character-offset answer mapping."""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_bert.data.errors import DataError, SkipCounter


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


def read_squad(
    path,
    tokenizer,
    *,
    sequence_length=384,
    doc_stride=128,
    max_query_length=64,
    skip_mismatched_answers=True,
):
    """Reads SQuAD v1.1 JSON into packed windows with start/end labels.

    Args:
        path: str, e.g. ../shared/data/squad/dev-v1.1.json.
        tokenizer: keras_bert.tokenization.BertTokenizer.
        sequence_length: int, packed length.
        doc_stride: int, pieces between the starts of consecutive context windows.
        max_query_length: int, question pieces kept.
        skip_mismatched_answers: bool. An answer whose `answer_start` does not
            point at its text in the context is skipped and counted
            (`answer_mismatch`) when True, else raises DataError.

    Returns:
        tuple (features, windows, skipped): features = dict of numpy arrays
        ("token_ids", "segment_ids", "padding_mask" int32 [N, S], "start_positions",
        "end_positions" int32 [N]); windows = list[SquadWindow] aligned with rows;
        skipped = SkipCounter.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            articles = json.load(handle)["data"]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, KeyError) as error:
        raise DataError(f"{path}: not SQuAD JSON ({error})") from None
    skipped = SkipCounter()
    contexts, questions = [], []
    for article in articles:
        for paragraph in article["paragraphs"]:
            contexts.append(paragraph["context"])
            for qa in paragraph["qas"]:
                questions.append((len(contexts) - 1, qa))
    context_ids, starts, ends = [], [], []
    for begin in range(0, len(contexts), 512):
        ids, s, e = tokenizer.tokenize_with_offsets(tf.constant(contexts[begin : begin + 512]))
        context_ids += ids.to_list()
        for text, byte_starts, byte_ends in zip(contexts[begin : begin + 512], s.to_list(), e.to_list()):
            char_starts, char_ends = _char_offsets(text, byte_starts, byte_ends)
            starts.append(char_starts)
            ends.append(char_ends)
    question_ids = []
    question_texts = [qa["question"] for _, qa in questions]
    for begin in range(0, len(question_texts), 4096):
        question_ids += tokenizer(tf.constant(question_texts[begin : begin + 4096])).to_list()
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows = {k: [] for k in ("token_ids", "segment_ids", "padding_mask", "start_positions", "end_positions")}
    windows = []
    for (context_index, qa), query in zip(questions, question_ids):
        context = contexts[context_index]
        query = query[:max_query_length]
        answer_texts = [a["text"] for a in qa.get("answers", [])]
        answer_start_piece = answer_end_piece = None
        if qa.get("answers"):
            answer = qa["answers"][0]
            char_start = int(answer["answer_start"])
            char_end = char_start + len(answer["text"])
            if context[char_start:char_end] != answer["text"]:
                if not skip_mismatched_answers:
                    raise DataError(f"{path}: question {qa['id']}: answer {answer['text']!r} not at "
                                    f"answer_start {char_start} of its context")
                skipped["answer_mismatch"] += 1
                continue
            piece_starts, piece_ends = starts[context_index], ends[context_index]
            overlapping = [i for i, (s, e) in enumerate(zip(piece_starts, piece_ends)) if s < char_end and e > char_start]
            if not overlapping:
                skipped["answer_without_pieces"] += 1
                continue
            answer_start_piece, answer_end_piece = overlapping[0], overlapping[-1]
        pieces = context_ids[context_index]
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
                offset + i - window_start: (starts[context_index][i], ends[context_index][i])
                for i in range(window_start, window_end)
            }
            windows.append(SquadWindow(qa["id"], context, spans, answer_texts))
            if window_end >= len(pieces):
                break
            window_start += doc_stride
    features = {k: np.asarray(v, np.int32) for k, v in rows.items()}
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


def best_answers(start_logits, end_logits, windows, max_answer_length=30):
    """Maps per-window start/end logits back to answer text (best span per question).

    Args:
        start_logits: float array [N, S].
        end_logits: float array [N, S].
        windows: list[SquadWindow] aligned with the rows.
        max_answer_length: int, longest span in pieces.

    Returns:
        dict[str, str]: question id -> predicted answer text.
    """
    best = {}
    for row, window in enumerate(windows):
        positions = sorted(window.token_char_spans)
        scores_start, scores_end = np.asarray(start_logits[row]), np.asarray(end_logits[row])
        top_starts = [p for p in np.argsort(-scores_start)[:20] if p in window.token_char_spans]
        top_ends = [p for p in np.argsort(-scores_end)[:20] if p in window.token_char_spans]
        for s in top_starts:
            for e in top_ends:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = scores_start[s] + scores_end[e]
                if window.question_id not in best or score > best[window.question_id][0]:
                    text = window.context[window.token_char_spans[s][0] : window.token_char_spans[e][1]]
                    best[window.question_id] = (score, text)
        if window.question_id not in best and positions:
            best[window.question_id] = (-np.inf, "")
    return {k: v[1] for k, v in best.items()}
