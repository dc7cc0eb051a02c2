"""The `fill_mask` task: texts with a literal `[MASK]` in, the top-k tokens for it out (the pretrainer's MLM head)."""

import tensorflow as tf

from keras_bert.models import BertPretrainer
from keras_bert.tasks import base

MASK_TEXT = "[MASK]"  # The literal a fill-mask text marks the hidden word with.


def tokenize_masked(tokenizer, texts):
    """Tokenizes strings keeping each literal `[MASK]` as the mask token.

    Args:
        tokenizer: `BertTokenizer`.
        texts: tf.string Tensor `[batch]`.

    Returns:
        int32 RaggedTensor `[batch, (pieces)]`.
    """
    parts = tf.strings.split(texts, sep=MASK_TEXT)
    pieces = tokenizer(parts.flat_values)
    index_in_row = tf.range(tf.size(parts.flat_values, out_type=tf.int64)) - tf.gather(
        parts.row_splits, parts.value_rowids())
    not_last = index_in_row < tf.gather(parts.row_lengths(), parts.value_rowids()) - 1
    mask_counts = tf.cast(not_last, tf.int64)
    masks = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(mask_counts)], tf.constant(tokenizer.mask_token_id, tf.int32)), mask_counts)
    merged = tf.concat([tf.cast(pieces, tf.int32), masks], axis=1)
    return tf.RaggedTensor.from_row_splits(merged, parts.row_splits).merge_dims(1, 2)


class FillMask(base.TaskKind):
    """Fill-mask on a `BertPretrainer`: `tokens` and `scores` `[batch, top_k]` for the first `[MASK]`."""

    name = "fill_mask"
    model_class = BertPretrainer
    trainable = False

    def check_model(self, model):
        if not isinstance(model, BertPretrainer):
            raise ValueError(f"Task 'fill_mask' needs a BertPretrainer, but the model is a {type(model).__name__} "
                             "(the masked-LM head lives in the pretrainer; an encoder alone has none)")
        return model

    def postprocess(self, module, texts):
        packed = module.packer(tokenize_masked(module.tokenizer, texts["text"]))
        is_mask = tf.logical_and(tf.equal(packed["token_ids"], module.tokenizer.mask_token_id),
                                 packed["padding_mask"] > 0)
        has_mask = tf.reduce_any(is_mask, axis=1)
        position = tf.cast(tf.argmax(tf.cast(is_mask, tf.int32), axis=1), tf.int32)
        logits = tf.cast(module.run_model(dict(packed, masked_positions=position[:, tf.newaxis]))["mlm_logits"][:, 0],
                         tf.float32)
        scores, indices = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=module.top_k)
        tokens = tf.gather(tf.constant(module.vocabulary), indices)
        has = has_mask[:, tf.newaxis]
        return {"tokens": tf.where(has, tokens, tf.zeros_like(tokens)),
                "scores": tf.where(has, scores, tf.zeros_like(scores))}
