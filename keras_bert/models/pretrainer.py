"""`BertPretrainer`: encoder + masked-LM and next-sentence heads, trainable with `model.fit`."""

import keras
from keras import ops

from keras_bert.layers import MaskedLMHead, NextSentenceHead
from keras_bert.models.losses import MaskedAccuracy
from keras_bert.models.task import Task


@keras.saving.register_keras_serializable(package="keras_bert")
class BertPretrainer(Task):
    """BERT pretraining model: masked LM (MLM) and next-sentence prediction (NSP).

    Inputs: the encoder's `token_ids`, `segment_ids`, `padding_mask` plus
    `masked_positions` int32 `[batch, P]`. Outputs: `mlm_logits`
    `[batch, P, vocab]` (only at the masked positions) and `nsp_logits`
    `[batch, 2]`, both float32. The MLM output matrix is the encoder's
    token-embedding matrix.

    Training targets for `fit` are a dict `y`: `mlm_labels` int32 `[batch, P]`,
    `mlm_weights` float32 `[batch, P]` (0 for padded predictions) and
    `nsp_labels` int32 `[batch]` (0: B follows A, 1: B is random). The loss is
    the weighted-mean MLM cross-entropy plus the NSP cross-entropy; `fit`
    reports `loss`, `mlm_loss`, `nsp_loss`, `mlm_accuracy` and `nsp_accuracy`.

    Args:
        encoder: `BertEncoder`.

    Example:
    >>> import numpy as np
    >>> from keras_bert import BertConfig, BertEncoder
    >>> encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=100))
    >>> pretrainer = BertPretrainer(encoder)
    >>> ids = np.array([[2, 5, 4, 6, 3, 7, 3, 0]], "int32")  # [CLS] a [MASK] b [SEP] c [SEP] pad
    >>> out = pretrainer({"token_ids": ids, "segment_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 0]], "int32"),
    ...                   "padding_mask": (ids > 0).astype("int32"), "masked_positions": np.array([[2]], "int32")})
    >>> tuple(out["mlm_logits"].shape), tuple(out["nsp_logits"].shape)
    ((1, 1, 100), (1, 2))
    >>> pretrainer.compile(optimizer="adam")
    """

    task_kind = "fill_mask"

    def __init__(self, encoder, **kwargs):
        config = encoder.config
        # === Layers ===
        mlm_head = MaskedLMHead(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size, hidden_act=config.hidden_act,
            layer_norm_epsilon=config.layer_norm_epsilon, initializer_range=config.initializer_range,
            token_embedding=encoder.token_embedding, name="mlm_head")
        nsp_head = NextSentenceHead(initializer_range=config.initializer_range, name="nsp_head")

        # === Functional Model ===
        inputs = dict(encoder.input)
        inputs["masked_positions"] = keras.Input(shape=(None,), dtype="int32", name="masked_positions")
        encoded = encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
        outputs = {
            "mlm_logits": mlm_head(encoded["sequence_output"], inputs["masked_positions"]),
            "nsp_logits": nsp_head(encoded["pooled_output"]),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.encoder = encoder
        self.mlm_head = mlm_head
        self.nsp_head = nsp_head
        self.mlm_loss = keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="mlm_loss")
        self.nsp_loss = keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="nsp_loss")
        self.mlm_accuracy = MaskedAccuracy(name="mlm_accuracy")  # no argmax over the vocabulary
        self.nsp_accuracy = keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

    def fill_mask(self, texts, top_k=5, batch_size=32):
        """The top-k tokens for each text's first literal `[MASK]`: lists of `(token, probability)` (text-in)."""
        from keras_bert.tasks.fill_mask import fill_mask  # TensorFlow only

        return fill_mask(self, texts, top_k=top_k, batch_size=batch_size)

    def compile(self, optimizer="auto", **kwargs):
        """Compiles with BERT's loss; `optimizer="auto"` is AdamW with BERT's weight-decay exclusions."""
        if kwargs.get("loss") not in (None, "auto"):
            raise ValueError("BertPretrainer computes its own MLM + NSP loss; do not pass `loss`.")
        kwargs.pop("loss", None)
        super().compile(optimizer=self._resolve_optimizer(optimizer, 1e-4), **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        _check_targets(y, ("mlm_labels", "mlm_weights", "nsp_labels"), "BertPretrainer")
        weights = ops.cast(y["mlm_weights"], "float32")
        mlm_losses = keras.losses.sparse_categorical_crossentropy(
            y["mlm_labels"], y_pred["mlm_logits"], from_logits=True)
        mlm_loss = ops.sum(mlm_losses * weights) / ops.maximum(ops.sum(weights), 1e-5)
        nsp_loss = ops.mean(keras.losses.sparse_categorical_crossentropy(
            y["nsp_labels"], y_pred["nsp_logits"], from_logits=True))
        total = mlm_loss + nsp_loss
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        weights = ops.cast(y["mlm_weights"], "float32")
        self.mlm_loss.update_state(y["mlm_labels"], y_pred["mlm_logits"], sample_weight=weights)
        self.mlm_accuracy.update_state(y["mlm_labels"], y_pred["mlm_logits"], sample_weight=weights)
        self.nsp_loss.update_state(y["nsp_labels"], y_pred["nsp_logits"])
        self.nsp_accuracy.update_state(y["nsp_labels"], y_pred["nsp_logits"])
        return super().compute_metrics(x, y, y_pred, sample_weight)


def _check_targets(y, keys, model_name):
    if not isinstance(y, dict) or any(k not in y for k in keys):
        got = sorted(y) if isinstance(y, dict) else type(y).__name__
        raise ValueError(f"{model_name} expects targets y as a dict with keys {list(keys)}; got {got}")
