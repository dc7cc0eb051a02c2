"""Eager Python references for the export tests: Keras model on eagerly tokenized text + numpy post-processing.

Written independently of the in-graph post-processing of `keras_bert.export.module`.
"""

import numpy as np
import tensorflow as tf

from keras_bert.data.ner import document_windows
from keras_bert.export import MASK_TEXT, parse_tag
from keras_bert.tokenization import BertPacker, BertTokenizer


class Reference:
    """Tokenizer + packer + Keras model, eager.

    Args:
        model: keras.Model. The task model.
        vocabulary: list[str]. The vocabulary.
        max_length: int. Truncation length.
    """

    def __init__(self, model, vocabulary, max_length):
        self.model = model
        self.vocabulary = list(vocabulary)
        self.tokenizer = BertTokenizer(vocabulary, lowercase=True)
        self.packer = BertPacker.from_tokenizer(self.tokenizer, sequence_length=max_length, pad_to_longest=True)
        self.max_length = max_length

    def _ids(self, texts):
        return [self.tokenizer(tf.constant([t])).to_list()[0] for t in texts]

    def _run(self, segments, **extra):
        ragged = [tf.ragged.constant(s, dtype=tf.int32, ragged_rank=1, inner_shape=()) for s in segments]
        packed = self.packer(tuple(ragged) if len(ragged) == 2 else ragged[0])
        inputs = {k: np.asarray(v) for k, v in packed.items()}
        inputs.update(extra)
        outputs = self.model(inputs, training=False)
        if isinstance(outputs, dict):
            return inputs, {k: np.asarray(v) for k, v in outputs.items()}
        return inputs, np.asarray(outputs)

    def classification(self, texts, labels, pairs=None):
        segments = [self._ids(texts)] + ([self._ids(pairs)] if pairs is not None else [])
        _, logits = self._run(segments)
        probabilities = _softmax(logits)
        return {"probabilities": probabilities, "label": np.array([labels[i] for i in probabilities.argmax(-1)])}

    def regression(self, texts, pairs=None):
        segments = [self._ids(texts)] + ([self._ids(pairs)] if pairs is not None else [])
        _, score = self._run(segments)
        return {"score": score.reshape(-1)}

    def embedding(self, texts, pooling):
        inputs, outputs = self._run([self._ids(texts)])
        if isinstance(outputs, dict):  # an encoder: pool here
            sequence = outputs["sequence_output"].astype("float32")
            if pooling == "cls":
                return {"embedding": sequence[:, 0]}
            mask = inputs["padding_mask"][..., None].astype("float32")
            return {"embedding": (sequence * mask).sum(1) / np.maximum(mask.sum(1), 1.0)}
        return {"embedding": outputs}

    def fill_mask(self, texts, top_k):
        mask_id = self.vocabulary.index("[MASK]")
        ids = []
        for text in texts:
            parts = text.split(MASK_TEXT)
            row = []
            for index, part in enumerate(parts):
                row += self._ids([part])[0] + ([mask_id] if index < len(parts) - 1 else [])
            ids.append(row)
        ids = [row[:self.max_length - 2] for row in ids]
        positions = np.array([[row.index(mask_id) + 1 if mask_id in row else 0] for row in ids], "int32")
        _, outputs = self._run([ids], masked_positions=positions)
        probabilities = _softmax(outputs["mlm_logits"][:, 0, :])
        tokens, scores = [], []
        for row, p in zip(ids, probabilities):
            order = np.argsort(-p, kind="stable")[:top_k]
            has = mask_id in row
            tokens.append([self.vocabulary[i] if has else "" for i in order])
            scores.append(p[order] if has else np.zeros(top_k, "float32"))
        return {"tokens": np.array(tokens, dtype=object), "scores": np.array(scores, "float32")}

    def _pieces_with_offsets(self, text, limit):
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(tf.constant([text]))
        ids, starts, ends = ids.to_list()[0], starts.to_list()[0], ends.to_list()[0]
        encoded = text.encode("utf-8")
        char = lambda b: len(encoded[:b].decode("utf-8"))
        return ids[:limit], starts[:limit], ends[:limit], [char(s) for s in starts[:limit]], \
            [char(e) for e in ends[:limit]]

    def ner(self, texts, labels, doc_stride=128):
        """Whole-text entities: windows of `document_windows`, each piece from its max-context window."""
        rows = [self._pieces_with_offsets(t, 10 ** 6) for t in texts]
        window = self.max_length - 2
        windows = []  # (row, begin, end)
        for b, row in enumerate(rows):
            starts = [-1 if i and self.vocabulary[t].startswith("##") else 0 for i, t in enumerate(row[0])]
            windows += [(b, begin, end) for begin, end in document_windows(starts, window, doc_stride)] or [(b, 0, 0)]
        _, logits = self._run([[rows[b][0][begin:end] for b, begin, end in windows]])
        window_probabilities = _softmax(logits)
        results = []
        for b, (text, (ids, _, _, char_starts, char_ends)) in enumerate(zip(texts, rows)):
            probabilities = [None] * len(ids)
            best = [-1.0] * len(ids)
            for w, (row, begin, end) in enumerate(windows):
                if row != b:
                    continue
                for position in range(begin, end):
                    score = min(position - begin, end - 1 - position) + 0.01 * (end - begin)
                    if score > best[position]:
                        best[position], probabilities[position] = score, window_probabilities[w, position - begin + 1]
            words = []  # [tag, score, start, end]
            for i, token_id in enumerate(ids):
                p = probabilities[i]
                if i == 0 or not self.vocabulary[token_id].startswith("##"):
                    words.append([labels[int(p.argmax())], float(p.max()), char_starts[i], char_ends[i]])
                else:
                    words[-1][3] = char_ends[i]
            entities = []  # [type, start, end, scores]
            previous = None
            for tag, score, start, end in words:
                entity_type, begins, _ = parse_tag(tag)
                if entity_type is None:
                    previous = None
                    continue
                if not begins and previous == entity_type:
                    entities[-1][2] = end
                    entities[-1][3].append(score)
                else:
                    entities.append([entity_type, start, end, [score]])
                previous = entity_type
            results.append([(t, s, e, text[s:e], float(np.mean(sc))) for t, s, e, sc in entities])
        return results

    def qa(self, questions, contexts, max_answer_length):
        question_ids = self._ids(questions)
        context_rows = [self._pieces_with_offsets(c, 10 ** 6) for c in contexts]
        q_ragged = tf.ragged.constant(question_ids, dtype=tf.int32, ragged_rank=1, inner_shape=())
        c_ragged = tf.ragged.constant([r[0] for r in context_rows], dtype=tf.int32, ragged_rank=1, inner_shape=())
        q_trunc, c_trunc = self.packer.truncate((q_ragged, c_ragged))
        q_lengths, c_lengths = q_trunc.row_lengths().numpy(), c_trunc.row_lengths().numpy()
        _, outputs = self._run([q_trunc.to_list(), c_trunc.to_list()])
        results = []
        for b, context in enumerate(contexts):
            start_log = _log_softmax(outputs["start_logits"][b])
            end_log = _log_softmax(outputs["end_logits"][b])
            offset = q_lengths[b] + 2
            best = (-np.inf, 0, 0)
            for i in range(c_lengths[b]):
                for j in range(i, min(c_lengths[b], i + max_answer_length)):
                    score = start_log[offset + i] + end_log[offset + j]
                    if score > best[0]:
                        best = (score, i, j)
            if c_lengths[b] == 0:
                results.append(("", 0, 0, 0.0))
                continue
            _, _, _, char_starts, char_ends = context_rows[b]
            start, end = char_starts[best[1]], char_ends[best[2]]
            results.append((context[start:end], start, end, float(np.exp(best[0]))))
        return results


def _softmax(x):
    x = np.asarray(x, "float64")
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


def _log_softmax(x):
    x = np.asarray(x, "float64")
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())
