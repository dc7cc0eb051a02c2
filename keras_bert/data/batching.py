"""Batching of packed examples: fixed length, pad-to-longest, or length buckets."""

import tensorflow as tf


def _trim(features, label, sequence_label):
    length = tf.reduce_sum(features["padding_mask"])
    features = {k: v[:length] for k, v in features.items()}
    if sequence_label:
        label = label[:length]
    return features, label


def batch_packed_examples(
    dataset,
    batch_size,
    *,
    bucket_boundaries=None,
    pad_to_longest=False,
    sequence_label=False,
    pad_token_id=0,
    drop_remainder=False,
):
    """Batches an unbatched dataset of (features, label) packed to a fixed length.

    Args:
        dataset: tf.data.Dataset of (x, label), x = dict of int32 [S] with
            "padding_mask"; label scalar or [S] (`sequence_label`).
        batch_size: int.
        bucket_boundaries: list[int] or None. Sequence-length bucket boundaries
            (e.g. [16, 32, 64]): examples are grouped by length and each batch is
            padded to its own longest example (`bucket_by_sequence_length`).
        pad_to_longest: bool, without buckets, pad each batch to its longest example.
        sequence_label: bool, the label is per token (NER): padded with -1.
        pad_token_id: int, padding value of "token_ids".
        drop_remainder: bool, drop the last partial batch (per bucket).

    Returns:
        tf.data.Dataset of batched (x, label).
    """
    if not bucket_boundaries and not pad_to_longest:
        return dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda x, y: _trim(x, y, sequence_label))
    x_spec, y_spec = dataset.element_spec
    padding_values = (
        {k: tf.constant(pad_token_id if k == "token_ids" else 0, spec.dtype) for k, spec in x_spec.items()},
        tf.constant(-1 if sequence_label else 0, y_spec.dtype),
    )
    if not bucket_boundaries:
        return dataset.padded_batch(batch_size, padding_values=padding_values, drop_remainder=drop_remainder)
    return dataset.bucket_by_sequence_length(
        element_length_func=lambda x, y: tf.shape(x["token_ids"])[0],
        bucket_boundaries=list(bucket_boundaries),
        bucket_batch_sizes=[batch_size] * (len(bucket_boundaries) + 1),
        padding_values=padding_values,
        drop_remainder=drop_remainder,
    )
