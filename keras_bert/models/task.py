"""`Task`: the base of every model that wraps a `BertEncoder` with heads; text in when it has a preprocessor."""

import keras

from keras_bert.models.encoder import BertEncoder
from keras_bert.models.quantization import quantized_layers, requantize


class Task(keras.Model):
    """A functional model made of `self.encoder` plus task heads.

    Subclasses build their graph in `__init__` and keep every constructor
    argument as an attribute of the same name; `get_config` serializes the
    encoder (and the preprocessor, when there is one) as nested objects.

    With a `preprocessor` (a `keras_bert.tasks.BertTextPreprocessor`, set by
    `from_pretrained`), `fit`, `evaluate` and `predict` also take raw text:
    strings, a tuple of two string lists (pairs) or a `tf.data.Dataset` of
    strings; the text is tokenized and packed in tf.data. Ids in still work.
    """

    # Constructor arguments other than `encoder` and `preprocessor`, in order; set by subclasses.
    config_keys = ()
    # The `keras_bert.tasks` kind of the model; set by subclasses.
    task_kind = None

    @property
    def preprocessor(self):
        """`BertTextPreprocessor` or None: what turns text into this model's inputs."""
        return self.__dict__.get("_preprocessor")

    @preprocessor.setter
    def preprocessor(self, value):
        # Straight into __dict__, past Keras' attribute tracking: it has no weights and is not in the graph.
        self.__dict__["_preprocessor"] = value

    def get_config(self):
        config = {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "name": self.name,
            "trainable": self.trainable,
        }
        config.update({key: getattr(self, key) for key in self.config_keys})
        if self.preprocessor is not None:
            config["preprocessor"] = keras.saving.serialize_keras_object(self.preprocessor)
        quantized = quantized_layers(self)  # the heads' (the encoder's own config has its layers)
        if quantized:
            config["quantized_layers"] = quantized
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = config.pop("encoder")
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, BertEncoder):
            raise TypeError(f"{cls.__name__}: 'encoder' must deserialize to a BertEncoder")
        quantized = config.pop("quantized_layers", None)
        preprocessor = config.pop("preprocessor", None)
        if isinstance(preprocessor, dict):
            import keras_bert.tasks.preprocessing  # noqa: F401  (registers the class; TensorFlow only)

            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        model = requantize(cls(encoder=encoder, **config), quantized)
        model.preprocessor = preprocessor
        return model

    @classmethod
    def from_pretrained(cls, directory, sequence_length=512, **kwargs):
        """A text-in task model on the encoder of a pretrained model directory.

        Args:
            directory: str. A `keras_bert.save` directory, a Hugging Face BERT directory (safetensors,
                config.json, vocab.txt) or a Google TF1 checkpoint directory.
            sequence_length: int. Longest packed sequence (at most the model's position embeddings).
            **kwargs: the task model's own arguments (e.g. `num_classes`, `labels`).

        Example (needs a model directory):

            model = keras_bert.BertClassifier.from_pretrained(DIR, num_classes=3, labels=["bad", "meh", "good"])
            model.fit(["awful", "fine", "great"], ["bad", "meh", "good"], epochs=2)
            model.predict(["not bad at all"])
        """
        from keras_bert.tasks.preprocessing import BertTextPreprocessor, load_pretrained  # TensorFlow only

        encoder, vocabulary, lowercase = load_pretrained(directory)
        sequence_length = min(int(sequence_length), int(encoder.config.max_position_embeddings))
        model = cls(encoder, **kwargs)
        model.preprocessor = BertTextPreprocessor(vocabulary, lowercase=lowercase, sequence_length=sequence_length)
        return model

    def with_attentions(self):
        """A functional model: `{"outputs": this model's outputs, "attentions": [...]}` for the same inputs.

        `attentions` is the list of the encoder's per-layer attention probabilities `[batch, heads, seq, seq]`,
        from a `BertEncoder(config, output_attentions=True)` holding a copy of this model's encoder weights
        (copied now: call again after training). Without a functional model, `self.encoder.attentions(inputs)`
        gives the same maps from the shared weights.
        """
        encoder = BertEncoder(self.encoder.config, output_attentions=True, name=f"{self.encoder.name}_attentions")
        encoder.set_weights(self.encoder.get_weights())
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in self.input}
        return keras.Model(inputs, {"outputs": self(inputs), "attentions": encoder(inputs)["attentions"]},
                           name=f"{self.name}_with_attentions")

    def get_compile_config(self):
        # Task.compile has its own defaults; callers compile again after `keras_bert.load`.
        return None

    @staticmethod
    def _resolve_optimizer(optimizer, learning_rate):
        if optimizer != "auto":
            return optimizer
        from keras_bert.optimization import create_optimizer

        return create_optimizer(learning_rate=learning_rate)

    # --- Text in ---
    def _text_dataset(self, x, y=None, batch_size=None, shuffle=False, labelled=True):
        """A dataset of model inputs for raw text `x`, or None when `x` is not text (ids go straight in)."""
        if self.preprocessor is None or x is None or isinstance(x, dict):
            return None
        from keras_bert import tasks  # TensorFlow only, and only when text comes in
        from keras_bert.tasks.preprocessing import is_raw_text

        if not is_raw_text(x):
            return None
        return tasks.get(self.task_kind).text_dataset(self, x, y, batch_size=batch_size or 32, shuffle=shuffle,
                                                      labelled=labelled)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, validation_data=None, shuffle=True, **kwargs):
        """Keras `fit`; `x` may be text (see the class docstring), labels ids or names."""
        dataset = self._text_dataset(x, y, batch_size, shuffle)
        if dataset is not None:
            x, y, batch_size, shuffle = dataset, None, None, False
        if isinstance(validation_data, tuple) and len(validation_data) == 2:
            validation = self._text_dataset(*validation_data, batch_size=None)
            validation_data = validation if validation is not None else validation_data
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data,
                           shuffle=shuffle, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Keras `evaluate`; `x` may be text."""
        dataset = self._text_dataset(x, y, batch_size)
        if dataset is not None:
            x, y, batch_size = dataset, None, None
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """Keras `predict`; `x` may be text."""
        dataset = self._text_dataset(x, None, batch_size, labelled=False)
        if dataset is not None:
            x, batch_size = dataset, None
        return super().predict(x, batch_size=batch_size, **kwargs)
