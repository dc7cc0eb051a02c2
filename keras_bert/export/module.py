"""`ServingModule`: tokenizer + packer + Keras model + task post-processing in one TF graph.

Every signature uses only TensorFlow core ops plus the tensorflow-text ops that
TF Serving's stock build registers (see `keras_bert/export/serving_ops_allowlist.txt`).

Character offsets (`start`, `end`, `entity_starts`, `entity_ends`) count Unicode
code points of the UTF-8 input, end exclusive, so that in Python
`text[start:end]` is the answer/entity text (an invalid UTF-8 byte counts as one
character, as `bytes.decode("utf-8", "replace")` does).
"""

import numpy as np
import tensorflow as tf

from keras_bert.models import (BertClassifier, BertEmbedder, BertEncoder, BertPretrainer, BertQuestionAnswerer,
                               BertRegressor, BertTokenClassifier)
from keras_bert.tokenization import BertPacker, BertTokenizer

TASKS = ("classification", "regression", "ner", "qa", "embedding", "fill_mask")
MASK_TEXT = "[MASK]"  # The literal a fill-mask text marks the hidden word with.
_MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")
_BEGIN_PREFIXES = ("B-", "S-", "U-")
_INSIDE_PREFIXES = ("I-", "E-", "L-")


def default_max_length(model):
    """Returns the default truncation length: the encoder's `max_position_embeddings`, at most 512.

    Args:
        model: keras.Model. A `BertEncoder` or a model with an `.encoder`.
    """
    return min(int(_encoder_of(model).config.max_position_embeddings), 512)


def _encoder_of(model):
    return model if isinstance(model, BertEncoder) else model.encoder


def parse_tag(tag):
    """Splits a BIO/BIOES tag into `(entity_type, begins)`; `entity_type` is None for "O".

    Args:
        tag: str. E.g. "B-PER", "I-LOC", "O", or a bare type such as "PER".
    """
    if tag in ("O", ""):
        return None, False
    for prefix in _BEGIN_PREFIXES:
        if tag.startswith(prefix):
            return tag[len(prefix):], True
    for prefix in _INSIDE_PREFIXES:
        if tag.startswith(prefix):
            return tag[len(prefix):], False
    return tag, False


def task_model(model, task, pooling=None):
    """Checks that `model` fits `task` and returns the Keras model the export runs.

    Args:
        model: keras.Model. What `keras_bert.load` returned.
        task: str. One of `TASKS`.
        pooling: str or None. For "embedding": "mean" (default) or "cls".

    Returns:
        keras.Model: the model itself, or a `BertEmbedder` sharing its encoder.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}")
    expected = {"classification": BertClassifier, "regression": BertRegressor, "ner": BertTokenClassifier,
                "qa": BertQuestionAnswerer, "fill_mask": BertPretrainer}
    kind = type(model).__name__
    if task == "embedding":
        if isinstance(model, BertEmbedder):
            if pooling is not None and pooling != model.pooling:
                raise ValueError(f"The model is a BertEmbedder with pooling={model.pooling!r}; "
                                 f"--pooling {pooling} does not match (leave it out or re-wrap the encoder)")
            return model
        if not isinstance(model, BertEncoder) and not isinstance(getattr(model, "encoder", None), BertEncoder):
            raise ValueError(f"Task 'embedding' needs a keras_bert model with an encoder, got {kind}")
        return BertEmbedder(_encoder_of(model), pooling=pooling or "mean", name="embedder")
    if pooling is not None:
        raise ValueError(f"--pooling applies to the embedding task only, not {task!r}")
    if not isinstance(model, expected[task]):
        hint = {"fill_mask": " (the masked-LM head lives in the pretrainer; an encoder alone has none)"}
        raise ValueError(f"Task {task!r} needs a {expected[task].__name__}, but the model is a {kind}"
                         f"{hint.get(task, '')}")
    return model


def _class_names(model):
    labels = getattr(model, "labels", None)
    return [str(label) for label in labels] if labels else [str(i) for i in range(model.num_classes)]


def _string_spec(name):
    return tf.TensorSpec([None], tf.string, name=name)


class ServingModule(tf.Module):
    """A `tf.Module` whose signatures take raw strings, ids, or `tf.Example`s.

    Args:
        model: keras.Model. The task model (see `task_model`).
        task: str. One of `TASKS`.
        vocabulary: str or list[str]. The WordPiece vocabulary (path or tokens).
        lowercase: bool. Tokenizer casing (uncased models: True).
        max_length: int or None. Truncation length in word pieces including
            specials; None uses `default_max_length(model)`. Batches are padded
            only to their longest sequence.
        pair: bool. For classification/regression: inputs `text` and `text_pair`.
        top_k: int. For fill_mask: number of predictions.
        max_answer_length: int. For qa: the longest answer, in word pieces.
    """

    def __init__(self, model, task, vocabulary, lowercase=True, max_length=None, pair=False, top_k=5,
                 max_answer_length=30):
        super().__init__(name="keras_bert_serving")
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if pair and task not in ("classification", "regression"):
            raise ValueError(f"pair=True applies to classification and regression, not {task!r}")
        limit = int(_encoder_of(model).config.max_position_embeddings)
        max_length = default_max_length(model) if max_length is None else int(max_length)
        if not 3 <= max_length <= limit:
            raise ValueError(f"max_length must be in [3, {limit}] (the model's max_position_embeddings), "
                             f"got {max_length}")
        # === Layers ===
        # Kept out of TF's object tracking: a SavedModel that tracks the Keras objects saves
        # their variables in a form the TF1 loader (TF Serving) cannot restore; `signatures()`
        # tracks the raw tf.Variables the functions capture instead (as keras.export does).
        tokenizer = BertTokenizer(vocabulary, lowercase=lowercase, name="tokenizer")
        self._keras = _Untracked(
            model=model, tokenizer=tokenizer,
            packer=BertPacker.from_tokenizer(tokenizer, sequence_length=max_length, pad_to_longest=True,
                                             name="packer"))
        # === Config ===
        self.task = task
        self.pair = bool(pair)
        self.max_length = max_length
        self.top_k = min(int(top_k), self.tokenizer.vocabulary_size())
        self.max_answer_length = int(max_answer_length)
        self._vocab = self.tokenizer.get_vocabulary()
        self._is_continuation = np.array([t.startswith("##") for t in self._vocab], dtype=bool)
        if task in ("classification", "ner"):
            self.class_names = _class_names(model)
        if task == "ner":
            parsed = [parse_tag(tag) for tag in self.class_names]
            self.entity_types = sorted({t for t, _ in parsed if t is not None})
            self._tag_type = np.array([-1 if t is None else self.entity_types.index(t) for t, _ in parsed],
                                      np.int64)
            self._tag_begins = np.array([b for _, b in parsed], bool)
        self.text_inputs = {"qa": ("question", "context")}.get(task, ("text", "text_pair") if pair else ("text",))
        self.id_inputs = _MODEL_INPUTS + (("masked_positions",) if task == "fill_mask" else ())
        self._build_functions()

    # ----------------------------------------------------------------- signatures
    def _build_functions(self):
        names = self.text_inputs
        if len(names) == 1:
            def serve_text(text):
                return self.predict_texts({"text": text})
        elif names == ("text", "text_pair"):
            def serve_text(text, text_pair):
                return self.predict_texts({"text": text, "text_pair": text_pair})
        else:
            def serve_text(question, context):
                return self.predict_texts({"question": question, "context": context})
        self.serving_default = tf.function(serve_text, input_signature=[_string_spec(n) for n in names])

        def serve_examples(examples):
            features = {n: tf.io.FixedLenFeature([], tf.string) for n in names}
            parsed = tf.io.parse_example(examples, features)
            return self.predict_texts(parsed)
        self.serve_examples = tf.function(serve_examples, input_signature=[_string_spec("examples")])

        if self.task == "fill_mask":
            def serve_ids(token_ids, segment_ids, padding_mask, masked_positions):
                return self.predict_ids({"token_ids": token_ids, "segment_ids": segment_ids,
                                         "padding_mask": padding_mask, "masked_positions": masked_positions})
        else:
            def serve_ids(token_ids, segment_ids, padding_mask):
                return self.predict_ids({"token_ids": token_ids, "segment_ids": segment_ids,
                                         "padding_mask": padding_mask})
        self.serve_ids = tf.function(
            serve_ids, input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in self.id_inputs])

    @property
    def model(self):
        """keras.Model: the task model."""
        return self._keras.model

    @property
    def tokenizer(self):
        """BertTokenizer: the in-graph tokenizer."""
        return self._keras.tokenizer

    @property
    def packer(self):
        """BertPacker: packs segments, truncating to `max_length`."""
        return self._keras.packer

    def signatures(self):
        """Traces the signatures, tracks the variables they use; returns `{name: concrete function}`."""
        functions = {
            "serving_default": self.serving_default.get_concrete_function(),
            "serve_ids": self.serve_ids.get_concrete_function(),
            "serve_examples": self.serve_examples.get_concrete_function(),
        }
        variables = {}
        for function in functions.values():
            for variable in function.variables:
                variables.setdefault(id(variable), variable)
        self._all_variables = list(variables.values())
        return functions

    # ----------------------------------------------------------------- model
    def _run_model(self, inputs):
        outputs = self.model({k: tf.cast(v, tf.int32) for k, v in inputs.items()}, training=False)
        if isinstance(outputs, dict):
            return {k: tf.convert_to_tensor(v) for k, v in outputs.items()}
        return tf.convert_to_tensor(outputs)

    def predict_ids(self, inputs):
        """Runs the model on packed ids and returns its raw outputs as a dict.

        Args:
            inputs: dict of int32 Tensors `[batch, length]`: `token_ids`, `segment_ids`,
                `padding_mask` (and `masked_positions` `[batch, P]` for fill_mask).
        """
        outputs = self._run_model(inputs)
        if isinstance(outputs, dict):
            return outputs
        name = {"classification": "logits", "ner": "logits", "regression": "score",
                "embedding": "embedding"}[self.task]
        return {name: outputs}

    # ----------------------------------------------------------------- text
    def tokenize_masked(self, texts):
        """Tokenizes strings keeping each literal `[MASK]` as the mask token.

        Args:
            texts: tf.string Tensor `[batch]`.

        Returns:
            int32 RaggedTensor `[batch, (pieces)]`.
        """
        parts = tf.strings.split(texts, sep=MASK_TEXT)
        pieces = self.tokenizer(parts.flat_values)
        index_in_row = tf.range(tf.size(parts.flat_values, out_type=tf.int64)) - tf.gather(
            parts.row_splits, parts.value_rowids())
        not_last = index_in_row < tf.gather(parts.row_lengths(), parts.value_rowids()) - 1
        mask_counts = tf.cast(not_last, tf.int64)
        masks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(mask_counts)], tf.constant(self.tokenizer.mask_token_id, tf.int32)),
            mask_counts)
        merged = tf.concat([tf.cast(pieces, tf.int32), masks], axis=1)
        return tf.RaggedTensor.from_row_splits(merged, parts.row_splits).merge_dims(1, 2)

    def predict_texts(self, texts):
        """Tokenizes, packs, runs the model and post-processes; returns the task's dense outputs.

        Args:
            texts: dict of tf.string Tensors `[batch]` keyed by `self.text_inputs`.
        """
        task = self.task
        if task == "qa":
            return self._predict_qa(texts["question"], texts["context"])
        if task == "ner":
            return self._predict_ner(texts["text"])
        if task == "fill_mask":
            return self._predict_fill_mask(texts["text"])
        segments = tuple(self.tokenizer(texts[name]) for name in self.text_inputs)
        packed = self.packer(segments if len(segments) == 2 else segments[0])
        outputs = self._run_model(packed)
        if task == "classification":
            probabilities = tf.nn.softmax(tf.cast(outputs, tf.float32), axis=-1)
            label = tf.gather(tf.constant(self.class_names), tf.argmax(probabilities, axis=-1))
            return {"probabilities": probabilities, "label": label}
        if task == "regression":
            return {"score": tf.reshape(tf.cast(outputs, tf.float32), [-1])}
        return {"embedding": tf.cast(outputs, tf.float32)}

    def _predict_fill_mask(self, text):
        pieces = self.tokenize_masked(text)
        packed = self.packer(pieces)
        is_mask = tf.logical_and(tf.equal(packed["token_ids"], self.tokenizer.mask_token_id),
                                 packed["padding_mask"] > 0)
        has_mask = tf.reduce_any(is_mask, axis=1)
        position = tf.cast(tf.argmax(tf.cast(is_mask, tf.int32), axis=1), tf.int32)
        inputs = dict(packed, masked_positions=tf.expand_dims(position, 1))
        logits = tf.cast(self._run_model(inputs)["mlm_logits"][:, 0, :], tf.float32)
        scores, indices = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=self.top_k)
        tokens = tf.gather(tf.constant(self._vocab), indices)
        has = tf.expand_dims(has_mask, 1)
        return {"tokens": tf.where(has, tokens, tf.zeros_like(tokens)),
                "scores": tf.where(has, scores, tf.zeros_like(scores))}

    def _predict_ner(self, text):
        ids, byte_starts, byte_ends = self.tokenizer.tokenize_with_offsets(text)
        (ids,) = self.packer.truncate((tf.cast(ids, tf.int32),))
        lengths = ids.row_lengths()
        byte_starts = _keep_first(byte_starts, lengths)
        byte_ends = _keep_first(byte_ends, lengths)
        char_starts, char_ends = _to_char_offsets(text, byte_starts), _to_char_offsets(text, byte_ends)
        logits = tf.cast(self._run_model(self.packer(ids)), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        rows = ids.value_rowids()
        index_in_row = tf.range(tf.size(ids.flat_values, out_type=tf.int64)) - tf.gather(ids.row_splits, rows)
        piece_probs = tf.gather_nd(probabilities, tf.stack([rows, index_in_row + 1], axis=1))  # skip [CLS]
        piece_tag = tf.argmax(piece_probs, axis=-1)
        piece_score = tf.reduce_max(piece_probs, axis=-1)
        # A word starts at every piece that is not a "##" continuation (and at each row's first piece).
        word_start = tf.logical_or(
            tf.logical_not(tf.gather(tf.constant(self._is_continuation), ids.flat_values)), index_in_row == 0)
        word_index = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
        word_rows = tf.boolean_mask(rows, word_start)
        word_tag = tf.boolean_mask(piece_tag, word_start)  # a word's tag is its first piece's tag
        word_score = tf.boolean_mask(piece_score, word_start)
        word_char_start = tf.boolean_mask(char_starts.flat_values, word_start)
        word_byte_start = tf.boolean_mask(byte_starts.flat_values, word_start)
        word_char_end = tf.math.unsorted_segment_max(char_ends.flat_values, word_index, num_words)
        word_byte_end = tf.math.unsorted_segment_max(byte_ends.flat_values, word_index, num_words)
        # Group B-/I- tags into entities: I-X continues the previous word's X entity in the same text.
        word_type = tf.gather(tf.constant(self._tag_type), word_tag)
        begins_tag = tf.gather(tf.constant(self._tag_begins), word_tag)
        previous_type = tf.concat([[-1], word_type[:-1]], axis=0)
        previous_row = tf.concat([[-1], word_rows[:-1]], axis=0)
        in_entity = word_type >= 0
        continues = in_entity & ~begins_tag & tf.equal(previous_row, word_rows) & tf.equal(previous_type, word_type)
        begins = in_entity & ~continues
        entity_index = tf.boolean_mask(tf.cumsum(tf.cast(begins, tf.int64)) - 1, in_entity)
        num_entities = tf.reduce_sum(tf.cast(begins, tf.int64))
        entity_rows = tf.boolean_mask(word_rows, begins)
        entity_byte_start = tf.boolean_mask(word_byte_start, begins)
        entity_byte_end = tf.math.unsorted_segment_max(tf.boolean_mask(word_byte_end, in_entity), entity_index,
                                                      num_entities)
        entity_text = tf.strings.substr(tf.gather(text, entity_rows), entity_byte_start,
                                        entity_byte_end - entity_byte_start, unit="BYTE")
        values = {
            "entity_labels": tf.gather(tf.constant(self.entity_types + [""]), tf.boolean_mask(word_type, begins)),
            "entity_starts": tf.cast(tf.boolean_mask(word_char_start, begins), tf.int32),
            "entity_ends": tf.cast(tf.math.unsorted_segment_max(
                tf.boolean_mask(word_char_end, in_entity), entity_index, num_entities), tf.int32),
            "entity_text": entity_text,
            "entity_scores": tf.math.unsorted_segment_mean(
                tf.boolean_mask(word_score, in_entity), entity_index, num_entities),
        }
        batch = tf.shape(text, out_type=tf.int64)[0]
        padding = {"entity_labels": "", "entity_starts": -1, "entity_ends": -1, "entity_text": "",
                   "entity_scores": 0.0}
        outputs = {}
        for name, flat in values.items():
            ragged = tf.RaggedTensor.from_value_rowids(flat, entity_rows, nrows=batch)
            outputs[name] = ragged.to_tensor(default_value=padding[name])
        outputs["num_entities"] = tf.cast(ragged.row_lengths(), tf.int32)
        return outputs

    def _predict_qa(self, question, context):
        question_ids = tf.cast(self.tokenizer(question), tf.int32)
        context_ids, byte_starts, byte_ends = self.tokenizer.tokenize_with_offsets(context)
        question_ids, context_ids = self.packer.truncate((question_ids, tf.cast(context_ids, tf.int32)))
        context_length = context_ids.row_lengths()
        byte_starts = _keep_first(byte_starts, context_length)
        byte_ends = _keep_first(byte_ends, context_length)
        char_starts, char_ends = _to_char_offsets(context, byte_starts), _to_char_offsets(context, byte_ends)
        outputs = self._run_model(self.packer((question_ids, context_ids)))
        sequence_length = tf.shape(outputs["start_logits"], out_type=tf.int64)[1]
        # Context piece j sits at position len(question) + 2 + j ([CLS] question [SEP] context [SEP]).
        width = tf.maximum(tf.reduce_max(tf.concat([context_length, [0]], 0)), 1)
        j = tf.range(width)
        positions = tf.minimum(tf.expand_dims(question_ids.row_lengths() + 2, 1) + j, sequence_length - 1)
        valid = j < tf.expand_dims(context_length, 1)  # [B, W]
        start_log = tf.gather(tf.nn.log_softmax(tf.cast(outputs["start_logits"], tf.float32)), positions,
                              batch_dims=1)
        end_log = tf.gather(tf.nn.log_softmax(tf.cast(outputs["end_logits"], tf.float32)), positions,
                            batch_dims=1)
        span = tf.expand_dims(start_log, 2) + tf.expand_dims(end_log, 1)  # [B, W(start), W(end)]
        offset = tf.expand_dims(j, 0) - tf.expand_dims(j, 1)  # end - start
        allowed = tf.logical_and(offset >= 0, offset < self.max_answer_length)
        allowed = allowed & tf.expand_dims(valid, 2) & tf.expand_dims(valid, 1)
        span = tf.where(allowed, span, tf.fill(tf.shape(span), tf.constant(-np.inf, tf.float32)))
        flat = tf.reshape(span, [tf.shape(span)[0], -1])
        best = tf.argmax(flat, axis=1)
        best_start, best_end = best // width, best % width
        has = context_length > 0
        def pick(ragged, index):  # row b's item index[b]; a zero column keeps all-empty batches valid
            dense = ragged.to_tensor()
            dense = tf.concat([dense, tf.zeros([tf.shape(dense)[0], 1], dense.dtype)], axis=1)
            return tf.gather(dense, tf.expand_dims(index, 1), batch_dims=1)[:, 0]

        zeros = tf.zeros_like(context_length)
        start_byte = tf.where(has, pick(byte_starts, best_start), zeros)
        end_byte = tf.where(has, pick(byte_ends, best_end), zeros)
        score = tf.exp(tf.reduce_max(flat, axis=1))
        return {
            "answer": tf.strings.substr(context, start_byte, end_byte - start_byte, unit="BYTE"),
            "start": tf.cast(tf.where(has, pick(char_starts, best_start), zeros), tf.int32),
            "end": tf.cast(tf.where(has, pick(char_ends, best_end), zeros), tf.int32),
            "score": tf.where(has, score, tf.zeros_like(score)),
        }


class _Untracked:
    """A plain attribute holder that TF's object tracking does not look into."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)


def _keep_first(ragged, lengths):
    positions = tf.ragged.range(ragged.row_lengths())
    keep = positions < tf.expand_dims(tf.cast(lengths, positions.dtype), 1)
    return tf.ragged.boolean_mask(ragged, keep)


def _to_char_offsets(text, byte_offsets):
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
