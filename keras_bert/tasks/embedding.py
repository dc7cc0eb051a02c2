"""The `embedding` task: texts in, sentence vectors out (mean or [CLS] pooling)."""

import tensorflow as tf

from keras_bert.models import BertEmbedder, BertEncoder
from keras_bert.tasks import base


class Embedding(base.TaskKind):
    """Sentence embeddings; exported as `embedding` `[batch, hidden]` float32. Nothing to fine-tune here."""

    name = "embedding"
    model_class = BertEmbedder
    output_name = "embedding"
    trainable = False

    def check_model(self, model, pooling=None):
        """The model itself when it is a `BertEmbedder`, else a `BertEmbedder` sharing its encoder."""
        if isinstance(model, BertEmbedder):
            if pooling is not None and pooling != model.pooling:
                raise ValueError(f"The model is a BertEmbedder with pooling={model.pooling!r}; "
                                 f"pooling {pooling!r} does not match (leave it out or re-wrap the encoder)")
            return model
        encoder = model if isinstance(model, BertEncoder) else getattr(model, "encoder", None)
        if not isinstance(encoder, BertEncoder):
            raise ValueError(f"Task 'embedding' needs a keras_bert model with an encoder, got {type(model).__name__}")
        return BertEmbedder(encoder, pooling=pooling or "mean", name="embedder")

    def build_model(self, encoder, labels=None, dropout=None):
        return BertEmbedder(encoder)

    def postprocess(self, module, texts):
        return {"embedding": tf.cast(module.run_model(module.pack_texts(texts)), tf.float32)}

    def text_dataset(self, model, x, y=None, *, batch_size=32, shuffle=False, seed=None, labelled=True):
        from keras_bert.tasks import preprocessing

        return preprocessing.text_dataset(model.preprocessor, x, None if y is None else y, batch_size=batch_size,
                                          shuffle=shuffle, seed=seed, labelled=labelled)
