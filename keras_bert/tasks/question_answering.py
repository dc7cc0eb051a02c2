"""The `question_answering` task: extractive spans (SQuAD v1.1 JSON); the one span selection of eval and export."""

import json
import os

import numpy as np
import tensorflow as tf

from keras_bert.data import DataError, read_squad_records, squad_dataset, squad_windows
from keras_bert.models import BertQuestionAnswerer
from keras_bert.tasks import base
from keras_bert.tokenization import keep_first
from keras_bert.trainer import metrics as task_metrics

FORMATS = ("squad",)


def best_spans(start_logits, end_logits, candidates, max_answer_length=30):
    """The best answer span of each row: argmax of `start_logits[s] + end_logits[e]` over allowed spans.

    A span is allowed when `s` and `e` are candidates (context pieces) and `0 <= e - s < max_answer_length`.
    Used by `training.evaluate` (per window) and inside the exported SavedModel.

    Args:
        start_logits: float Tensor `[batch, seq]`.
        end_logits: float Tensor `[batch, seq]`.
        candidates: bool Tensor `[batch, seq]`, the positions an answer may start or end at.
        max_answer_length: int. Longest answer, in word pieces.

    Returns:
        tuple `(start, end, score, found)`: int64 positions `[batch]`, the float32 logit sum `[batch]`
        (-inf without candidates) and bool `[batch]`, whether the row had a candidate.
    """
    negative = tf.constant(-np.inf, tf.float32)
    candidates = tf.cast(candidates, tf.bool)
    start_logits = tf.where(candidates, tf.cast(start_logits, tf.float32), negative)
    end_logits = tf.where(candidates, tf.cast(end_logits, tf.float32), negative)
    length = tf.shape(start_logits, out_type=tf.int64)[1]
    positions = tf.range(length)
    offset = positions[tf.newaxis, :] - positions[:, tf.newaxis]  # end - start
    allowed = (offset >= 0) & (offset < max_answer_length)
    span = start_logits[:, :, tf.newaxis] + end_logits[:, tf.newaxis, :]
    span = tf.where(allowed[tf.newaxis], span, negative)
    flat = tf.reshape(span, [tf.shape(span)[0], -1])
    best = tf.argmax(flat, axis=1)
    found = tf.reduce_any(candidates, axis=1)
    return best // length, best % length, tf.reduce_max(flat, axis=1), found


def best_answers(start_logits, end_logits, windows, max_answer_length=30, batch_size=64):
    """Maps per-window start/end logits back to answer text: the best span over all windows of a question.

    Args:
        start_logits: list of float arrays `[seq]` (one per window; lengths may differ).
        end_logits: list of float arrays `[seq]`.
        windows: list of `SquadWindow` aligned with the rows.
        max_answer_length: int. Longest span in pieces.
        batch_size: int. Windows scored at a time.

    Returns:
        dict: question id -> `{"text", "start", "end", "score"}` (character offsets in the context, end exclusive).
    """
    best = {}
    for begin in range(0, len(windows), batch_size):
        rows = windows[begin:begin + batch_size]
        width = max(len(s) for s in start_logits[begin:begin + batch_size])
        starts = np.full((len(rows), width), -np.inf, np.float32)
        ends = np.full((len(rows), width), -np.inf, np.float32)
        candidates = np.zeros((len(rows), width), bool)
        for i, window in enumerate(rows):
            starts[i, :len(start_logits[begin + i])] = start_logits[begin + i]
            ends[i, :len(end_logits[begin + i])] = end_logits[begin + i]
            candidates[i, [p for p in window.token_char_spans if p < width]] = True
        s, e, score, found = (np.asarray(t) for t in best_spans(starts, ends, candidates, max_answer_length))
        for i, window in enumerate(rows):
            current = best.get(window.question_id)
            if not found[i]:
                best.setdefault(window.question_id, {"text": "", "start": 0, "end": 0, "score": -np.inf})
                continue
            if current is None or score[i] > current["score"]:
                start, end = window.token_char_spans[int(s[i])][0], window.token_char_spans[int(e[i])][1]
                best[window.question_id] = {"text": window.context[start:end], "start": start, "end": end,
                                            "score": float(score[i])}
    return best


class QuestionAnswering(base.TaskKind):
    """Extractive QA: official SQuAD v1.1 EM/F1 over doc_stride windows; exported answer text and span."""

    name = "question_answering"
    model_class = BertQuestionAnswerer
    text_inputs = ("question", "context")

    def read(self, path, options, tokenizer, *, batch_size, training, labels=None, seed=0, limit=None):
        base.file_format(path, options.data_format, FORMATS)
        features, windows, skipped = squad_windows(
            read_squad_records(path), tokenizer, sequence_length=options.max_seq_length,
            doc_stride=options.doc_stride, max_query_length=options.max_query_length, source=path)
        print(f"[data] {path}: {len(windows)} windows, {skipped.summary()}")
        if limit:
            features = {k: v[:limit] for k, v in features.items()}
            windows = windows[:limit]
        if not windows:
            raise DataError(f"{path}: no question with a usable answer")
        dataset = squad_dataset(features, batch_size, shuffle=training, seed=seed,
                                drop_remainder=training).map(_trim_batch)
        return base.TaskData(dataset, len(windows), windows, None, path)

    def build_model(self, encoder, labels=None, dropout=None):
        return BertQuestionAnswerer(encoder)

    def predict(self, model, data):
        """`(start_logits, end_logits)` per window."""
        rows = []
        for x, _ in data.dataset:
            batch = base.forward(model)(x)
            rows += list(zip(np.asarray(batch["start_logits"]), np.asarray(batch["end_logits"])))
        return rows

    def evaluate(self, data, outputs, labels=None, options=None):
        max_answer_length = options.max_answer_length if options is not None else 30
        answers = best_answers([s for s, _ in outputs], [e for _, e in outputs], data.reference, max_answer_length)
        truths = {w.question_id: w.answers for w in data.reference}
        texts = {qid: answer["text"] for qid, answer in answers.items()}
        return task_metrics.squad_scores(texts, truths), texts

    def write_predictions(self, output_dir, data, predictions, tokenizer=None):
        with open(os.path.join(output_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(predictions, f, indent=1, ensure_ascii=False, sort_keys=True)

    def postprocess(self, module, texts):
        question, context = texts["question"], texts["context"]
        tokenizer, packer = module.tokenizer, module.packer
        question_ids = tf.cast(tokenizer(question), tf.int32)
        context_ids, byte_starts, byte_ends = tokenizer.tokenize_with_offsets(context)
        question_ids, context_ids = packer.truncate((question_ids, tf.cast(context_ids, tf.int32)))
        context_length = context_ids.row_lengths()
        byte_starts = keep_first(byte_starts, context_length)
        byte_ends = keep_first(byte_ends, context_length)
        char_starts, char_ends = to_char_offsets(context, byte_starts), to_char_offsets(context, byte_ends)
        outputs = module.run_model(packer((question_ids, context_ids)))
        start_logits, end_logits = outputs["start_logits"], outputs["end_logits"]
        # Context piece j sits at position len(question) + 2 + j ([CLS] question [SEP] context [SEP]).
        first_context = question_ids.row_lengths() + 2
        positions = tf.range(tf.shape(start_logits, out_type=tf.int64)[1])[tf.newaxis, :]
        candidates = ((positions >= first_context[:, tf.newaxis])
                      & (positions < (first_context + context_length)[:, tf.newaxis]))
        start, end, _, found = best_spans(start_logits, end_logits, candidates, module.max_answer_length)
        start_log = tf.nn.log_softmax(tf.cast(start_logits, tf.float32))
        end_log = tf.nn.log_softmax(tf.cast(end_logits, tf.float32))
        score = tf.exp(tf.gather(start_log, start, batch_dims=1) + tf.gather(end_log, end, batch_dims=1))
        start_piece, end_piece = start - first_context, end - first_context
        zeros = tf.zeros_like(context_length)
        start_byte = tf.where(found, pick(byte_starts, start_piece), zeros)
        end_byte = tf.where(found, pick(byte_ends, end_piece), zeros)
        return {
            "answer": tf.strings.substr(context, start_byte, end_byte - start_byte, unit="BYTE"),
            "start": tf.cast(tf.where(found, pick(char_starts, start_piece), zeros), tf.int32),
            "end": tf.cast(tf.where(found, pick(char_ends, end_piece), zeros), tf.int32),
            "score": tf.where(found, score, tf.zeros_like(score)),
        }

    # --- Text in, for `BertQuestionAnswerer.fit((questions, contexts), answers)` ---
    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        from keras_bert.tasks import preprocessing

        features, windows = preprocessing.qa_windows(model.preprocessor, x, y)
        dataset = squad_dataset(features, batch_size, shuffle=shuffle, seed=seed).map(_trim_batch)
        return dataset if y is not None else dataset.map(lambda x, _: x)


def answer(model, questions, contexts, max_answer_length=30, batch_size=32):
    """The answers of a text-in `BertQuestionAnswerer`: one dict per question.

    Args:
        model: `BertQuestionAnswerer` with a preprocessor (see `from_pretrained`).
        questions: list of str.
        contexts: list of str, one per question.
        max_answer_length: int. Longest answer, in word pieces.
        batch_size: int.

    Returns:
        list of `{"text", "start", "end", "score"}`: the answer and its character span in the context.
    """
    from keras_bert.tasks import preprocessing

    features, windows = preprocessing.qa_windows(model.preprocessor, (questions, contexts), None)
    data = base.TaskData(squad_dataset(features, batch_size).map(_trim_batch), len(windows), windows)
    outputs = QuestionAnswering().predict(model, data)
    best = best_answers([s for s, _ in outputs], [e for _, e in outputs], windows, max_answer_length)
    return [best[str(i)] for i in range(len(questions))]


def _trim_batch(x, y):
    """Cuts a batch of fixed-length windows to its longest window (positions all lie before it)."""
    length = tf.reduce_max(tf.reduce_sum(x["padding_mask"], axis=1))
    return {k: v[:, :length] for k, v in x.items()}, y


def pick(ragged, index):
    """Row b's item `index[b]`; a zero column keeps all-empty batches valid."""
    dense = ragged.to_tensor()
    dense = tf.concat([dense, tf.zeros([tf.shape(dense)[0], 1], dense.dtype)], axis=1)
    index = tf.clip_by_value(tf.cast(index, tf.int64), 0, tf.cast(tf.shape(dense)[1] - 1, tf.int64))
    return tf.gather(dense, tf.expand_dims(index, 1), batch_dims=1)[:, 0]


def to_char_offsets(text, byte_offsets):
    """Maps UTF-8 byte offsets (ragged `[batch, (n)]`) of `text` to code point offsets."""
    _, char_byte_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace",
                                                                 replacement_char=0xFFFD)
    big = tf.constant(np.iinfo(np.int64).max, tf.int64)
    sorted_starts = tf.cast(char_byte_starts, tf.int64).to_tensor(default_value=big)
    sorted_starts = tf.concat([sorted_starts, tf.fill([tf.shape(sorted_starts)[0], 1], big)], axis=1)
    values = tf.cast(byte_offsets, tf.int64)
    dense = values.to_tensor(default_value=0)
    # Number of characters that start before the byte offset = the character offset.
    chars = tf.searchsorted(sorted_starts, dense, side="left", out_type=tf.int64)
    return tf.RaggedTensor.from_tensor(chars, lengths=values.row_lengths())
