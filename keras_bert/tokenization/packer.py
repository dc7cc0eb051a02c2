"""Packing of one or two word-piece segments into BERT inputs ([CLS] A [SEP] B [SEP])."""

import keras
import tensorflow as tf


def _as_ragged(segment):
    if isinstance(segment, tf.RaggedTensor):
        return segment
    segment = tf.convert_to_tensor(segment)
    return tf.RaggedTensor.from_tensor(segment)


def keep_first(segment, lengths):
    """Keeps the first `lengths[i]` items of row i of a ragged [batch, (n)] tensor."""
    positions = tf.ragged.range(segment.row_lengths())
    keep = positions < tf.expand_dims(tf.cast(lengths, positions.dtype), 1)
    return tf.ragged.boolean_mask(segment, keep)


def truncated_pair_lengths(length_a, length_b, budget):
    """Lengths after BERT's `_truncate_seq_pair` (drop from the longer segment, B on ties).

    Args:
        length_a: int64 Tensor [batch], lengths of the first segment.
        length_b: int64 Tensor [batch], lengths of the second segment.
        budget: int, the number of word pieces the two segments may keep together.

    Returns:
        tuple (new_a, new_b) of int64 Tensors [batch].
    """
    budget = tf.cast(budget, length_a.dtype)
    half_up = (budget + 1) // 2
    new_a = tf.minimum(length_a, tf.maximum(budget - length_b, half_up))
    new_b = tf.minimum(length_b, budget - new_a)
    return new_a, new_b


@keras.saving.register_keras_serializable(package="keras_bert")
class BertPacker(keras.layers.Layer):
    """Packs one or two ragged segments into `token_ids`, `segment_ids`, `padding_mask`.

    Output layout is `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`. When the pieces do
    not fit, BERT's rule is applied: remove pieces from the end of the longer
    segment (the second one on ties) until they fit. Uses only core TensorFlow ops
    (no tensorflow-text trimmer ops), so it can be served by stock TF Serving.

    Args:
        cls_token_id: int, id of [CLS].
        sep_token_id: int, id of [SEP].
        pad_token_id: int, id of [PAD].
        sequence_length: int or None. The maximum packed length (truncation
            target). None means no truncation and padding to the longest
            sequence in the batch.
        pad_to_longest: bool. With a `sequence_length`, truncate to it but pad
            only to the longest packed sequence of the batch (for length
            bucketing); otherwise pad to exactly `sequence_length`.
        **kwargs: standard Keras layer arguments.
    """

    def __init__(
        self,
        cls_token_id,
        sep_token_id,
        pad_token_id=0,
        sequence_length=512,
        pad_to_longest=False,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if sequence_length is not None and int(sequence_length) < 3:
            raise ValueError(f"sequence_length must be >= 3, got {sequence_length}")
        self.cls_token_id = int(cls_token_id)
        self.sep_token_id = int(sep_token_id)
        self.pad_token_id = int(pad_token_id)
        self.sequence_length = None if sequence_length is None else int(sequence_length)
        self.pad_to_longest = bool(pad_to_longest)
        self.built = True

    @classmethod
    def from_tokenizer(cls, tokenizer, sequence_length=512, pad_to_longest=False, **kwargs):
        """Builds a packer with the special-token ids of a `BertTokenizer`.

        Args:
            tokenizer: keras_bert.tokenization.BertTokenizer.
            sequence_length: int or None, see the class docstring.
            pad_to_longest: bool, see the class docstring.
            **kwargs: standard Keras layer arguments.

        Returns:
            BertPacker.
        """
        return cls(
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
            sequence_length=sequence_length,
            pad_to_longest=pad_to_longest,
            **kwargs,
        )

    def truncate(self, segments):
        """Truncates one or two ragged segments to fit `sequence_length` with specials.

        Args:
            segments: tuple of 1 or 2 int RaggedTensors [batch, (n)].

        Returns:
            tuple of RaggedTensors of the same structure, truncated.
        """
        if self.sequence_length is None:
            return segments
        if len(segments) == 1:
            (a,) = segments
            return (keep_first(a, tf.minimum(a.row_lengths(), self.sequence_length - 2)),)
        a, b = segments
        new_a, new_b = truncated_pair_lengths(
            a.row_lengths(), b.row_lengths(), self.sequence_length - 3
        )
        return keep_first(a, new_a), keep_first(b, new_b)

    def call(self, inputs):
        """Packs segments.

        Args:
            inputs: an int RaggedTensor [batch, (n)] (one segment) or a tuple/list
                of two of them (pair).

        Returns:
            dict with int32 Tensors [batch, length]: "token_ids", "segment_ids",
            "padding_mask" (1 real token, 0 padding).
        """
        if isinstance(inputs, (tuple, list)):
            segments = tuple(_as_ragged(s) for s in inputs)
        else:
            segments = (_as_ragged(inputs),)
        if not 1 <= len(segments) <= 2:
            raise ValueError(f"BertPacker takes 1 or 2 segments, got {len(segments)}")
        segments = tuple(tf.cast(s, tf.int32) for s in segments)
        segments = self.truncate(segments)
        batch_size = segments[0].nrows()
        cls_column = tf.fill([batch_size, 1], tf.constant(self.cls_token_id, tf.int32))
        sep_column = tf.fill([batch_size, 1], tf.constant(self.sep_token_id, tf.int32))
        cls_column = tf.RaggedTensor.from_tensor(cls_column)
        sep_column = tf.RaggedTensor.from_tensor(sep_column)
        pieces = [cls_column, segments[0], sep_column]
        segment_pieces = [
            tf.zeros_like(cls_column),
            tf.zeros_like(segments[0]),
            tf.zeros_like(sep_column),
        ]
        if len(segments) == 2:
            pieces += [segments[1], sep_column]
            segment_pieces += [tf.ones_like(segments[1]), tf.ones_like(sep_column)]
        token_ids = tf.concat(pieces, axis=1)
        segment_ids = tf.concat(segment_pieces, axis=1)
        mask = tf.ones_like(token_ids)
        if self.sequence_length is not None and not self.pad_to_longest:
            shape = [None, self.sequence_length]
        else:
            shape = None
        return {
            "token_ids": token_ids.to_tensor(default_value=self.pad_token_id, shape=shape),
            "segment_ids": segment_ids.to_tensor(default_value=0, shape=shape),
            "padding_mask": mask.to_tensor(default_value=0, shape=shape),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "cls_token_id": self.cls_token_id,
                "sep_token_id": self.sep_token_id,
                "pad_token_id": self.pad_token_id,
                "sequence_length": self.sequence_length,
                "pad_to_longest": self.pad_to_longest,
            }
        )
        return config
