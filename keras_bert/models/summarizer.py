"""`BertExtractiveSummarizer`: BertSum sentence scoring over long documents encoded in chunks (keras.ops only)."""

import math

import keras
from keras import ops

from keras_bert.layers import Dropout, TransformerBlock
from keras_bert.models.task import Task

# The model's inputs: the chunk ids `[docs, chunks, seq]` and, per sentence `[docs, sentences]`, where its
# [CLS] sits (chunk, position) and whether it is a real sentence.
CHUNK_INPUTS = ("token_ids", "segment_ids", "padding_mask")
SENTENCE_INPUTS = ("sentence_chunk", "sentence_position", "sentence_mask")
INPUTS = CHUNK_INPUTS + SENTENCE_INPUTS


def summarizer_inputs():
    """Keras inputs: int32 `[docs, chunks, seq]` chunk ids and int32 `[docs, sentences]` sentence slots."""
    inputs = {name: keras.Input(shape=(None, None), dtype="int32", name=name) for name in CHUNK_INPUTS}
    inputs.update({name: keras.Input(shape=(None,), dtype="int32", name=name) for name in SENTENCE_INPUTS})
    return inputs


@keras.saving.register_keras_serializable(package="keras_bert")
class FlattenChunks(keras.layers.Layer):
    """`[docs, chunks, seq]` -> `[docs * chunks, seq]`: every chunk goes through the encoder as one sequence."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1]))

    def compute_output_shape(self, shape):
        return (None, shape[-1])


POOLINGS = ("cls", "mean")


@keras.saving.register_keras_serializable(package="keras_bert")
class SentenceVectors(keras.layers.Layer):
    """One vector per sentence from the encoder's top layer: `[docs, sentences, hidden]`.

    `cls` takes the vector at the sentence's `[CLS]` (BertSum); `mean` averages the sentence's own pieces in
    its chunk, `[CLS]` and `[SEP]` included (the pooling sentence-embedding models such as all-MiniLM-L6-v2
    are trained with, so the vectors carry the sentence's content before any fine-tuning).

    Args:
        pooling: str. `cls` or `mean`.

    Call arguments:
        sequence_output: float `[docs * chunks, seq, hidden]`.
        token_ids: int `[docs, chunks, seq]` (gives the chunk count).
        sentence_chunk: int `[docs, sentences]`, the chunk of each sentence's `[CLS]`.
        sentence_position: int `[docs, sentences]`, its position in that chunk.
        sentence_mask: int `[docs, sentences]`, 1 for real sentences (`mean` only).
        padding_mask: int `[docs, chunks, seq]`, 1 for real pieces (`mean` only).
    """

    def __init__(self, pooling="cls", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"SentenceVectors: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling

    def call(self, sequence_output, token_ids, sentence_chunk, sentence_position, sentence_mask=None,
             padding_mask=None):
        chunks, seq = ops.shape(token_ids)[1], ops.shape(token_ids)[2]
        hidden = ops.shape(sequence_output)[-1]
        flat = ops.reshape(sequence_output, (-1, chunks * seq, hidden))
        chunk = ops.cast(sentence_chunk, "int32")
        start = chunk * seq + ops.cast(sentence_position, "int32")
        if self.pooling == "cls":
            return ops.take_along_axis(flat, ops.expand_dims(start, -1), axis=1)
        if sentence_mask is None or padding_mask is None:
            raise ValueError("SentenceVectors: mean pooling needs sentence_mask and padding_mask")
        # A sentence runs from its [CLS] to the next sentence's in the same chunk, else to the chunk's end
        # (the padding after it is masked out).
        mask = ops.cast(sentence_mask, "int32")
        next_start = ops.concatenate([start[:, 1:], ops.zeros_like(start[:, :1])], axis=1)
        next_chunk = ops.concatenate([chunk[:, 1:], ops.zeros_like(chunk[:, :1]) - 1], axis=1)
        next_mask = ops.concatenate([mask[:, 1:], ops.zeros_like(mask[:, :1])], axis=1)
        same_chunk = ops.logical_and(ops.equal(next_chunk, chunk), ops.greater(next_mask, 0))
        end = ops.where(same_chunk, next_start, (chunk + 1) * seq)
        token = ops.arange(chunks * seq, dtype="int32")[None, :, None]
        member = ops.logical_and(ops.greater_equal(token, start[:, None, :]), ops.less(token, end[:, None, :]))
        pieces = ops.cast(ops.reshape(padding_mask, (-1, chunks * seq)), "float32")
        member = ops.cast(member, "float32") * pieces[:, :, None] * ops.cast(mask, "float32")[:, None, :]
        sums = ops.matmul(ops.transpose(member, (0, 2, 1)), ops.cast(flat, "float32"))  # [docs, S, hidden]
        counts = ops.sum(member, axis=1)
        return ops.cast(sums / ops.maximum(counts, 1.0)[:, :, None], self.compute_dtype)

    def compute_output_shape(self, sequence_output_shape, token_ids_shape, sentence_chunk_shape,
                             sentence_position_shape, sentence_mask_shape=None, padding_mask_shape=None):
        return (sentence_chunk_shape[0], sentence_chunk_shape[1], sequence_output_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(pooling=self.pooling)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class SentencePositionEncoding(keras.layers.Layer):
    """Adds BertSum's sinusoidal encoding of the sentence index (any number of sentences, no weights).

    Args:
        hidden_size: int. Width of the sentence vectors.
    """

    def __init__(self, hidden_size, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = int(hidden_size)

    def call(self, x):
        count = ops.shape(x)[1]
        position = ops.cast(ops.arange(count), "float32")[:, None]
        rate = ops.exp(ops.cast(ops.arange(0, self.hidden_size, 2), "float32")
                       * -(math.log(10000.0) / self.hidden_size))[None, :]
        angle = position * rate  # [sentences, hidden / 2]
        encoding = ops.reshape(ops.stack([ops.sin(angle), ops.cos(angle)], axis=-1), (count, -1))
        encoding = encoding[:, :self.hidden_size]
        return x + ops.cast(encoding[None], x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class SentenceScores(keras.layers.Layer):
    """A sigmoid score per sentence, float32 `[docs, sentences]`; 0 at padded sentence slots.

    Args:
        initializer_range: float. Stddev of the truncated-normal initializer.
    """

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range), dtype="float32",
            name="dense")

    def build(self, x_shape, sentence_mask_shape=None):
        self.dense.build(x_shape)

    def call(self, x, sentence_mask):
        logits = self.dense(ops.cast(x, "float32"))[..., 0]
        return ops.sigmoid(logits) * ops.cast(sentence_mask, "float32")

    def compute_output_shape(self, x_shape, sentence_mask_shape=None):
        return tuple(x_shape[:2])

    def get_config(self):
        config = super().get_config()
        config.update(initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class BertExtractiveSummarizer(Task):
    """Extractive summarizer (BertSum): scores every sentence of a document, one sigmoid output per aspect.

    Each sentence is `[CLS] sentence [SEP]` with interval segment ids (0/1 alternating by sentence); the
    sentence vector is the encoder's top-layer vector at its `[CLS]` (or the mean of its pieces). Long
    documents are encoded in chunks of whole sentences, each at most the preprocessor's `sequence_length`
    word pieces, and the sentence vectors of all chunks are scored together by `num_inter_layers`
    inter-sentence transformer blocks, so nothing is truncated: the only cut is a single sentence longer than
    the window, which is cut to the window. Inputs are `summarizer_inputs()`; outputs a dict
    `{aspect: float32 [docs, sentences]}`.
    Targets for `fit`: `{aspect: float [docs, sentences]}` 0/1 labels, -1 where a slot has no sentence.

    Args:
        encoder: `BertEncoder`.
        aspects: list of str. One output per aspect (e.g. `["challenge", "approach", "outcome"]`).
        num_inter_layers: int. Inter-sentence transformer blocks.
        dropout: float or None. Dropout on the sentence vectors; None uses the encoder's hidden dropout.
        pooling: str. Sentence vectors: `cls` (BertSum, the `[CLS]` vector) or `mean` (the mean of the
            sentence's pieces, as sentence-embedding encoders are trained).
        positive_weight: float. Weight of the positive (selected) sentences in the binary cross-entropy, for
            labels where few sentences are selected.
        trainable_encoder_layers: int or None. Fine-tune only the top N encoder blocks (the embeddings and
            the blocks below stay frozen, and their backward pass is skipped); None or N >= the encoder's
            blocks trains all of it.

    Example (needs a model directory):

        model = BertExtractiveSummarizer.from_pretrained(DIR, aspects=["summary"])
        model.predict(["First sentence.\\nSecond one.\\nThird."])  # [{"summary": {"indices", ...}}]
    """

    task_kind = "summarization"
    config_keys = ("aspects", "num_inter_layers", "dropout", "pooling", "positive_weight",
                   "trainable_encoder_layers")

    def __init__(self, encoder, aspects=("summary",), num_inter_layers=2, dropout=None, pooling="cls",
                 positive_weight=1.0, trainable_encoder_layers=None, **kwargs):
        aspects = [str(a) for a in aspects]
        if not aspects or len(set(aspects)) != len(aspects):
            raise ValueError(f"BertExtractiveSummarizer: aspects must be distinct names, got {aspects}")
        if not float(positive_weight) > 0:
            raise ValueError(f"BertExtractiveSummarizer: positive_weight must be > 0, got {positive_weight}")
        if trainable_encoder_layers is not None and int(trainable_encoder_layers) < 0:
            raise ValueError("BertExtractiveSummarizer: trainable_encoder_layers must be >= 0 or None, got "
                             f"{trainable_encoder_layers}")
        config = encoder.config
        dropout = config.hidden_dropout if dropout is None else dropout
        # === Layers ===
        flatten = FlattenChunks(name="flatten_chunks")
        vectors = SentenceVectors(pooling, name="sentence_vectors")
        positions = SentencePositionEncoding(config.hidden_size, name="sentence_positions")
        dropout_layer = Dropout(dropout, name="sentence_dropout")
        blocks = [TransformerBlock(
            hidden_size=config.hidden_size, num_heads=config.num_heads, intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act, dropout=dropout, attention_dropout=config.attention_dropout,
            layer_norm_epsilon=config.layer_norm_epsilon, initializer_range=config.initializer_range,
            head_size=config.head_size, name=f"inter_sentence_block_{i}") for i in range(num_inter_layers)]
        heads = {a: SentenceScores(config.initializer_range, name=a) for a in aspects}
        # === Functional Model ===
        inputs = summarizer_inputs()
        sequence = encoder({name: flatten(inputs[name]) for name in CHUNK_INPUTS})["sequence_output"]
        x = vectors(sequence, inputs["token_ids"], inputs["sentence_chunk"], inputs["sentence_position"],
                    inputs["sentence_mask"], inputs["padding_mask"])
        x = dropout_layer(positions(x))
        for block in blocks:
            x = block(x, inputs["sentence_mask"])
        outputs = {a: heads[a](x, inputs["sentence_mask"]) for a in aspects}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # === Config ===
        self.encoder = encoder
        self.aspects = aspects
        self.num_inter_layers = int(num_inter_layers)
        self.dropout = dropout
        self.pooling = pooling
        self.positive_weight = float(positive_weight)
        self.trainable_encoder_layers = None if trainable_encoder_layers is None else int(trainable_encoder_layers)
        if self.trainable_encoder_layers is not None:
            blocks = encoder.transformer_blocks
            frozen = blocks[:max(0, len(blocks) - self.trainable_encoder_layers)]
            for layer in [encoder.embeddings, *frozen] if frozen else []:
                layer.trainable = False

    @property
    def labels(self):
        """list of str: the aspects (what `training.evaluate` reads and scores)."""
        return list(self.aspects)

    def compile(self, optimizer="auto", **kwargs):
        """Compiles with the masked binary cross-entropy over sentences (positives weighted by
        `positive_weight`; mean over aspects)."""
        kwargs.pop("loss", None)
        super().compile(optimizer=self._resolve_optimizer(optimizer, 5e-5), **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y, dict) or set(y) != set(self.aspects):
            raise ValueError(f"BertExtractiveSummarizer: targets must be a dict with keys {self.aspects}")
        total = 0.0
        for aspect in self.aspects:
            labels = ops.cast(y[aspect], "float32")
            scores = ops.clip(ops.cast(y_pred[aspect], "float32"), 1e-7, 1.0 - 1e-7)
            mask = ops.cast(labels >= 0, "float32")
            labels = ops.maximum(labels, 0.0)
            bce = -(self.positive_weight * labels * ops.log(scores) + (1.0 - labels) * ops.log(1.0 - scores))
            total = total + ops.sum(bce * mask) / ops.maximum(ops.sum(mask), 1.0)
        total = total / len(self.aspects)
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def predict(self, x, batch_size=None, **kwargs):
        """Text in (a list of documents): per document `{aspect: {"indices", "scores", "summary"}}` (see
        `summarize`); packed inputs (a dict) give the raw Keras outputs."""
        if self.preprocessor is not None and not isinstance(x, dict):
            from keras_bert.tasks.preprocessing import is_raw_text

            if is_raw_text(x):
                return self.summarize(x, batch_size=batch_size or 4)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def summarize(self, documents, top_k=3, threshold=None, trigram_blocking=True, batch_size=4):
        """Summaries of text documents (a str, or a list of str or of sentence lists).

        A newline always ends a sentence; text without newlines is split into sentences.

        Args:
            documents: list of str (or of lists of sentences).
            top_k: int. Most sentences selected per aspect.
            threshold: float or None. Select only sentences scoring at least this.
            trigram_blocking: bool. Skip a sentence sharing a word trigram with one already selected.
            batch_size: int. Documents per model call.

        Returns:
            list (one per document) of `{aspect: {"indices", "scores", "summary", "sentences"}}`: the selected
            sentence indices in document order, every sentence's score, the summary (selected sentences, one a
            line) and the document's sentences.
        """
        from keras_bert.tasks.summarization import summarize  # TensorFlow only

        return summarize(self, documents, top_k=top_k, threshold=threshold, trigram_blocking=trigram_blocking,
                         batch_size=batch_size)
