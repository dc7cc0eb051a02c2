"""Checkpoint interop: Google TF1 checkpoints, Hugging Face safetensors and keras-hub.

Example (not run as a doctest: it needs checkpoint folders):

    from keras_bert import checkpoints
    model = checkpoints.from_hf("path/to/hf_folder")                # BertPretrainer or BertEncoder
    checkpoints.convert("tf1", "uncased_L-2_H-128_A-2", "converted")   # then keras_bert.load("converted")
    backbone = checkpoints.to_keras_hub(model.encoder)              # keras_hub.models.BertBackbone
    checkpoints.to_hf(model, "hf_out", vocab_file="vocab.txt")      # loadable by transformers
"""

from keras_bert.checkpoints.assign import CheckpointMismatchError, model_arrays, model_variables
from keras_bert.checkpoints.convert import FORMATS, convert
from keras_bert.checkpoints.hf import from_hf, hf_arrays, to_hf
from keras_bert.checkpoints.keras_hub import from_keras_hub, to_keras_hub
from keras_bert.checkpoints.tf1 import from_tf1

__all__ = [
    "CheckpointMismatchError",
    "FORMATS",
    "convert",
    "from_hf",
    "from_keras_hub",
    "from_tf1",
    "hf_arrays",
    "model_arrays",
    "model_variables",
    "to_hf",
    "to_keras_hub",
]
