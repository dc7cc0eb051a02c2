"""Task models on a `BertEncoder`: classification, regression, NER, span QA, sentence embeddings."""

import keras
from keras import ops

from keras_bert.layers import Dropout, MaskedMeanPooling
from keras_bert.layers.attention import padding_mask_to_bias
from keras_bert.models.encoder import encoder_inputs
from keras_bert.models.losses import MaskedAccuracy, MaskedSparseCategoricalCrossentropy
from keras_bert.models.pretrainer import _check_targets
from keras_bert.models.task import Task


def _dense(units, config, name, dtype=None):
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        dtype=dtype, name=name)


def _encode(encoder, feature):
    """New encoder inputs and the encoder's `feature` output for them."""
    inputs = encoder_inputs()
    if feature == "pooled_output":  # Sentence-level heads: the last block runs at [CLS] only.
        return inputs, encoder.pooled_output(inputs)
    return inputs, encoder(inputs)[feature]


def _check_labels(labels, num_classes, model_name):
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"{model_name}: {len(labels)} labels given for num_classes={num_classes}")
    return list(labels) if labels is not None else None


def _classification_graph(encoder, feature, num_classes, dropout, dropout_name):
    """Dropout + float32 `logits` dense on one encoder output; returns `(inputs, logits, dropout)`."""
    dropout = encoder.config.hidden_dropout if dropout is None else dropout
    # === Layers ===
    dropout_layer = Dropout(dropout, name=dropout_name)
    output_dense = _dense(num_classes, encoder.config, "logits", dtype="float32")
    # === Functional Model ===
    inputs, encoded = _encode(encoder, feature)
    return inputs, output_dense(dropout_layer(encoded)), dropout


@keras.saving.register_keras_serializable(package="keras_bert")
class BertClassifier(Task):
    """Sequence (or sequence-pair) classifier on the pooled `[CLS]` output.

    Output: float32 logits `[batch, num_classes]`. Targets for `fit`: int
    class ids `[batch]`.

    Args:
        encoder: `BertEncoder`.
        num_classes: int. Number of classes.
        labels: list of str or None. Class names, in id order (used by serving).
        dropout: float or None. Dropout before the output layer; None uses the
            encoder's hidden dropout.
    """

    task_kind = "classification"
    config_keys = ("num_classes", "labels", "dropout")

    def __init__(self, encoder, num_classes=2, labels=None, dropout=None, **kwargs):
        labels = _check_labels(labels, num_classes, "BertClassifier")
        inputs, logits, dropout = _classification_graph(encoder, "pooled_output", num_classes, dropout, "classifier_dropout")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.num_classes = num_classes
        self.labels = labels
        self.dropout = dropout

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Defaults: AdamW (BERT exclusions), sparse cross-entropy from logits, accuracy."""
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=self._resolve_optimizer(optimizer, 5e-5), loss=loss, metrics=metrics, **kwargs)


@keras.saving.register_keras_serializable(package="keras_bert")
class BertRegressor(Task):
    """Sequence (or pair) regression on the pooled output, e.g. semantic similarity.

    Output: float32 score `[batch]`. Targets for `fit`: float `[batch]`.

    Args:
        encoder: `BertEncoder`.
        dropout: float or None. Dropout before the output layer.
    """

    task_kind = "regression"
    config_keys = ("dropout",)

    def __init__(self, encoder, dropout=None, **kwargs):
        dropout = encoder.config.hidden_dropout if dropout is None else dropout
        # === Layers ===
        dropout_layer = Dropout(dropout, name="regressor_dropout")
        output_dense = _dense(1, encoder.config, "score", dtype="float32")
        flatten = keras.layers.Reshape((), name="flatten_score")
        # === Functional Model ===
        inputs, pooled = _encode(encoder, "pooled_output")
        score = flatten(output_dense(dropout_layer(pooled)))
        super().__init__(inputs=inputs, outputs=score, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.dropout = dropout

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Defaults: AdamW (BERT exclusions), mean squared error, mean absolute error."""
        loss = "mean_squared_error" if loss == "auto" else loss
        metrics = [keras.metrics.MeanAbsoluteError(name="mae")] if metrics == "auto" else metrics
        super().compile(optimizer=self._resolve_optimizer(optimizer, 5e-5), loss=loss, metrics=metrics, **kwargs)


@keras.saving.register_keras_serializable(package="keras_bert")
class BertTokenClassifier(Task):
    """Per-token classifier (NER): logits `[batch, seq, num_classes]`.

    Targets for `fit`: int labels `[batch, seq]`, with -1 wherever no label
    applies (special tokens, non-first word pieces, padding).

    Args:
        encoder: `BertEncoder`.
        num_classes: int. Number of tags.
        labels: list of str or None. Tag names in id order (e.g. `["O", "B-PER", ...]`).
        dropout: float or None. Dropout before the output layer.
    """

    task_kind = "token_classification"
    config_keys = ("num_classes", "labels", "dropout")

    def __init__(self, encoder, num_classes, labels=None, dropout=None, **kwargs):
        labels = _check_labels(labels, num_classes, "BertTokenClassifier")
        inputs, logits, dropout = _classification_graph(encoder, "sequence_output", num_classes, dropout, "token_dropout")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.num_classes = num_classes
        self.labels = labels
        self.dropout = dropout

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Defaults: AdamW, cross-entropy and accuracy over labelled positions only."""
        loss = MaskedSparseCategoricalCrossentropy() if loss == "auto" else loss
        metrics = [MaskedAccuracy(name="accuracy")] if metrics == "auto" else metrics
        super().compile(optimizer=self._resolve_optimizer(optimizer, 5e-5), loss=loss, metrics=metrics, **kwargs)

    def predict_tags(self, x, batch_size=32):
        """A tag per word of texts (split at whitespace) or word lists: lists of `(word, tag)` (text-in models)."""
        from keras_bert.tasks import predict_tags  # TensorFlow only

        return predict_tags(self, x, batch_size=batch_size)


@keras.saving.register_keras_serializable(package="keras_bert")
class SpanLogits(keras.layers.Layer):
    """Start and end logits over the sequence; padded positions get a large negative logit.

    Args:
        initializer_range: float. Stddev of the truncated-normal initializer.
    """

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy, name="dense")

    def build(self, sequence_output_shape, padding_mask_shape=None):
        self.dense.build(sequence_output_shape)

    def call(self, sequence_output, padding_mask):
        logits = ops.cast(self.dense(sequence_output), "float32")
        bias = padding_mask_to_bias(padding_mask)[:, 0, 0, :]
        return {"start_logits": logits[..., 0] + bias, "end_logits": logits[..., 1] + bias}

    def compute_output_shape(self, sequence_output_shape, padding_mask_shape=None):
        shape = tuple(sequence_output_shape[:2])
        return {"start_logits": shape, "end_logits": shape}

    def get_config(self):
        config = super().get_config()
        config.update(initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class BertQuestionAnswerer(Task):
    """SQuAD-style span extraction: `start_logits` and `end_logits`, each `[batch, seq]`.

    Targets for `fit`: a dict with `start_positions` and `end_positions`
    (token indices, int `[batch]`; 0, the `[CLS]` token, when the answer is
    not in the window). The loss is the mean of the two cross-entropies.

    Args:
        encoder: `BertEncoder`.
    """

    task_kind = "question_answering"
    def __init__(self, encoder, **kwargs):
        # === Layers ===
        span_logits = SpanLogits(encoder.config.initializer_range, name="span_logits")
        # === Functional Model ===
        inputs, sequence = _encode(encoder, "sequence_output")
        outputs = span_logits(sequence, inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.start_accuracy = keras.metrics.SparseCategoricalAccuracy(name="start_accuracy")
        self.end_accuracy = keras.metrics.SparseCategoricalAccuracy(name="end_accuracy")

    def compile(self, optimizer="auto", **kwargs):
        """Compiles with the span loss; `optimizer="auto"` is AdamW with BERT's exclusions."""
        kwargs.pop("loss", None)
        super().compile(optimizer=self._resolve_optimizer(optimizer, 5e-5), **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        _check_targets(y, ("start_positions", "end_positions"), "BertQuestionAnswerer")
        start = keras.losses.sparse_categorical_crossentropy(y["start_positions"], y_pred["start_logits"],
                                                             from_logits=True)
        end = keras.losses.sparse_categorical_crossentropy(y["end_positions"], y_pred["end_logits"],
                                                           from_logits=True)
        total = (ops.mean(start) + ops.mean(end)) / 2.0
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def answer(self, questions, contexts, max_answer_length=30, batch_size=32):
        """Answers with their character spans: a list of `{"text", "start", "end", "score"}` (text-in models)."""
        from keras_bert.tasks import answer  # TensorFlow only

        return answer(self, questions, contexts, max_answer_length=max_answer_length, batch_size=batch_size)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.start_accuracy.update_state(y["start_positions"], y_pred["start_logits"])
        self.end_accuracy.update_state(y["end_positions"], y_pred["end_logits"])
        return super().compute_metrics(x, y, y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="keras_bert")
class L2Normalize(keras.layers.Layer):
    """Scales each vector to unit L2 norm (float32)."""

    def call(self, x):
        x = ops.cast(x, "float32")
        return x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True)), 1e-12)


@keras.saving.register_keras_serializable(package="keras_bert")
class BertEmbedder(Task):
    """Sentence embeddings: mean of the last hidden states over real tokens, or the `[CLS]` state.

    Output: float32 `[batch, hidden]`.

    Args:
        encoder: `BertEncoder`.
        pooling: str. `"mean"` (over non-padding tokens, as sentence-transformers)
            or `"cls"` (the first token's hidden state).
        normalize: bool. Scale embeddings to unit length.
    """

    task_kind = "embedding"
    config_keys = ("pooling", "normalize")

    def __init__(self, encoder, pooling="mean", normalize=False, **kwargs):
        if pooling not in ("mean", "cls"):
            raise ValueError(f"BertEmbedder: pooling must be 'mean' or 'cls', got {pooling!r}")
        # === Functional Model ===
        inputs, sequence = _encode(encoder, "sequence_output")
        if pooling == "mean":
            embedding = MaskedMeanPooling(name="mean_pooling")(sequence, inputs["padding_mask"])
        else:
            embedding = ClsToken(name="cls_token")(sequence)
        if normalize:
            embedding = L2Normalize(name="l2_normalize")(embedding)
        super().__init__(inputs=inputs, outputs=embedding, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize


@keras.saving.register_keras_serializable(package="keras_bert")
class ClsToken(keras.layers.Layer):
    """The first (`[CLS]`) token's hidden state, float32."""

    def call(self, sequence_output):
        return ops.cast(sequence_output[:, 0, :], "float32")

    def compute_output_shape(self, sequence_shape):
        return (sequence_shape[0], sequence_shape[-1])
