"""`convert`: any supported checkpoint -> a directory `keras_bert.load` reads."""

from keras_bert.checkpoints.hf import import_hf
from keras_bert.checkpoints.keras_hub import import_keras_hub
from keras_bert.checkpoints.tf1 import import_tf1

FORMATS = ("tf1", "hf", "keras_hub")


def convert(source_format, src, out_dir, vocab_file=None, lowercase=None, heads="auto"):
    """Converts a checkpoint into a keras_bert model directory.

    Args:
        source_format: str. `"tf1"`, `"hf"` or `"keras_hub"`.
        src: str. The source folder (for `tf1` also a checkpoint prefix).
        out_dir: str. Output directory (model.keras, config.json, tokenizer.json,
            vocab.txt when known, keras_bert.json).
        vocab_file: str or None. Vocabulary when the source has none.
        lowercase: bool or None. Tokenizer casing; None takes it from the source.
        heads: "auto", True or False. Load the pretraining heads when the source
            has them ("auto"); False keeps the encoder only. keras-hub backbones
            have no heads.

    Returns:
        The converted model (`BertPretrainer` or `BertEncoder`).
    """
    from keras_bert.saving import save

    importers = {"tf1": import_tf1, "hf": import_hf, "keras_hub": import_keras_hub}
    if source_format not in importers:
        raise ValueError(f"Unknown source format {source_format!r}; expected one of {FORMATS}")
    kwargs = {} if source_format == "keras_hub" else {"heads": heads}
    model, vocab, lowercase = importers[source_format](src, vocab_file=vocab_file, lowercase=lowercase, **kwargs)
    save(model, out_dir, vocab_file=vocab, lowercase=lowercase)
    return model
