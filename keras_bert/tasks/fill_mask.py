"""The `fill_mask` task: texts with a literal `[MASK]` in, the top-k tokens for it out (the pretrainer's MLM head)."""

import numpy as np
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


def pack_masked(tokenizer, packer, texts):
    """Packed inputs with `masked_positions` `[batch, 1]` at each text's first `[MASK]`, and whether it has one."""
    packed = packer(tokenize_masked(tokenizer, texts))
    is_mask = tf.logical_and(tf.equal(packed["token_ids"], tokenizer.mask_token_id), packed["padding_mask"] > 0)
    position = tf.cast(tf.argmax(tf.cast(is_mask, tf.int32), axis=1), tf.int32)
    return dict(packed, masked_positions=position[:, tf.newaxis]), tf.reduce_any(is_mask, axis=1)


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
        inputs, has_mask = pack_masked(module.tokenizer, module.packer, texts["text"])
        logits = tf.cast(module.run_model(inputs)["mlm_logits"][:, 0], tf.float32)
        scores, indices = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=module.top_k)
        tokens = tf.gather(tf.constant(module.vocabulary), indices)
        has = has_mask[:, tf.newaxis]
        return {"tokens": tf.where(has, tokens, tf.zeros_like(tokens)),
                "scores": tf.where(has, scores, tf.zeros_like(scores))}

    # --- Text in, for `BertPretrainer.predict(texts)` (inputs only: pretraining data comes from training.pretrain) ---
    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        if y is not None:
            raise ValueError("BertPretrainer.fit takes pretraining batches (training.pretrain), not texts")
        texts = [x] if isinstance(x, str) else list(x)
        preprocessor = model.preprocessor
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(batch_size)
        return dataset.map(lambda t: pack_masked(preprocessor.tokenizer, preprocessor.packer, t)[0])


def fill_mask(model, texts, top_k=5, batch_size=32):
    """The `top_k` tokens for the first `[MASK]` of each text, from a text-in `BertPretrainer`.

    Returns:
        list of lists of `(token, probability)`; empty for a text without `[MASK]`.
    """
    vocabulary = model.preprocessor.tokenizer.get_vocabulary()
    logits = model.predict(texts, batch_size=batch_size, verbose=0)["mlm_logits"][:, 0].astype("float64")
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    result = []
    for text, row in zip(texts, probabilities):
        best = np.argsort(-row)[:top_k]
        result.append([(vocabulary[i], float(row[i])) for i in best] if MASK_TEXT in text else [])
    return result
