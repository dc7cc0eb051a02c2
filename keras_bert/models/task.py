"""`Task`: the base of every model that wraps a `BertEncoder` with heads."""

import keras

from keras_bert.models.encoder import BertEncoder


class Task(keras.Model):
    """A functional model made of `self.encoder` plus task heads.

    Subclasses build their graph in `__init__` and keep every constructor
    argument as an attribute of the same name; `get_config` serializes the
    encoder as a nested object (it does not chain to the functional config,
    which can't be passed back to a subclass constructor).
    """

    # Constructor arguments other than `encoder`, in order; set by subclasses.
    config_keys = ()

    def get_config(self):
        config = {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "name": self.name,
            "trainable": self.trainable,
        }
        config.update({key: getattr(self, key) for key in self.config_keys})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = config.pop("encoder")
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, BertEncoder):
            raise TypeError(f"{cls.__name__}: 'encoder' must deserialize to a BertEncoder")
        return cls(encoder=encoder, **config)

    def get_compile_config(self):
        # Task.compile has its own defaults; callers compile again after `keras_bert.load`.
        return None

    @staticmethod
    def _resolve_optimizer(optimizer, learning_rate):
        if optimizer != "auto":
            return optimizer
        from keras_bert.optimization import create_optimizer

        return create_optimizer(learning_rate=learning_rate)
