"""Saving and loading model directories: `keras_bert.save(model, dir)` / `keras_bert.load(dir)`, and the
tokenizer a directory was saved with: `keras_bert.load_tokenizer(dir)`.

A model directory holds:
- `model.keras`: the Keras 3 archive (config + weights), loaded in safe mode;
- `config.json`: the encoder's `BertConfig` with Hugging Face keys (for people and other tools);
- `vocab.txt` (when known) and `tokenizer.json`: `{"vocab_file", "lowercase"}`, so
  training and serving tokenize the same way;
- `keras_bert.json`: what the directory holds (format version, model class).
"""

import json
import os
import shutil

import keras

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
MANIFEST_FILE = "keras_bert.json"
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"


def _encoder_of(model):
    from keras_bert.models import BertEncoder

    return model if isinstance(model, BertEncoder) else model.encoder


def save(model, directory, vocab_file=None, lowercase=None, overwrite=True):
    """Saves a keras_bert model (encoder, pretrainer or task model) to a directory.

    Args:
        model: a `BertEncoder` or a model with an `.encoder`.
        directory: str. Created if missing.
        vocab_file: str or None. WordPiece vocab copied to `vocab.txt`; None: the model's preprocessor's
            vocabulary when it has one (text-in models).
        lowercase: bool or None. Tokenizer casing; None uses the preprocessor's, else `config.lowercase`.
        overwrite: bool. Replace an existing `model.keras`.

    Returns:
        The directory.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, MODEL_FILE)
    if os.path.exists(model_path) and not overwrite:
        raise FileExistsError(f"{model_path} exists; pass overwrite=True to replace it")
    config = _encoder_of(model).config
    # Write to a temporary name first so a crash never leaves half an archive under the real name.
    tmp_path = model_path + ".tmp.keras"
    model.save(tmp_path)
    os.replace(tmp_path, model_path)
    config.to_json(os.path.join(directory, "config.json"))
    vocab_name = None
    preprocessor = getattr(model, "preprocessor", None)
    if vocab_file is None and preprocessor is not None:  # A text-in model: its own vocabulary.
        with open(os.path.join(directory, VOCAB_FILE), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in preprocessor.tokenizer.get_vocabulary()))
        vocab_file = os.path.join(directory, VOCAB_FILE)
        lowercase = preprocessor.lowercase if lowercase is None else lowercase
    if vocab_file is not None:
        target = os.path.join(directory, VOCAB_FILE)
        if os.path.abspath(vocab_file) != os.path.abspath(target):
            shutil.copyfile(vocab_file, target)
        vocab_name = VOCAB_FILE
    elif os.path.exists(os.path.join(directory, VOCAB_FILE)):
        vocab_name = VOCAB_FILE
    tokenizer = {"vocab_file": vocab_name, "lowercase": config.lowercase if lowercase is None else bool(lowercase)}
    _write_json(os.path.join(directory, TOKENIZER_FILE), tokenizer)
    _write_json(os.path.join(directory, MANIFEST_FILE),
                {"format_version": FORMAT_VERSION, "model_class": type(model).__name__, "model_file": MODEL_FILE})
    return directory


def load(directory, compile=False, dtype_policy=None):
    """Loads what `save` (or a checkpoint converter) wrote: encoder, pretrainer or task model.

    Args:
        directory: str. A directory written by `keras_bert.save`, or a `.keras` file.
        compile: bool. Restore the compile state saved with the model.
        dtype_policy: str or None. Keras dtype policy to build the model under, e.g.
            `"mixed_bfloat16"` (bfloat16 compute, float32 weights); the layers that keras_bert
            keeps in float32 (LayerNorm, softmax, logits) stay so. None: the global policy.
    """
    directory = os.fspath(directory)
    path = directory
    if os.path.isdir(directory):
        path = os.path.join(directory, MODEL_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{directory} is not a keras_bert model directory: {MODEL_FILE} is missing "
                f"(convert checkpoints with `python -m training.convert`)")
    elif not os.path.exists(directory):
        raise FileNotFoundError(f"No such model directory: {directory}")
    import keras_bert.models  # noqa: F401  (registers the classes)

    # The saved configs hold no dtype, so the layers take the global policy while they are built.
    previous = keras.config.dtype_policy()
    if dtype_policy is not None:
        keras.config.set_dtype_policy(dtype_policy)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    finally:
        keras.config.set_dtype_policy(previous)


def load_tokenizer_settings(directory, require_vocab=False):
    """Returns `{"vocab_file": absolute path or None, "lowercase": bool}` of a model directory.

    Args:
        directory: str or os.PathLike. A model directory (`keras_bert.save`, a checkpoint converter).
        require_vocab: bool. Raise unless the directory holds its vocabulary file.

    Raises:
        FileNotFoundError: naming the directory, when `tokenizer.json` is missing, or with
            `require_vocab` when the directory has no vocab.txt.
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: the model directory has no tokenizer settings")
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
    if settings.get("vocab_file"):
        settings["vocab_file"] = os.path.join(directory, settings["vocab_file"])
    if require_vocab and not (settings.get("vocab_file") and os.path.exists(settings["vocab_file"])):
        raise FileNotFoundError(
            f"{directory} has no {VOCAB_FILE}: save the model with keras_bert.save(..., vocab_file=...)")
    return settings


def load_tokenizer(directory, **kwargs):
    """Returns the `BertTokenizer` a model directory was saved with (its vocab.txt and casing).

    Args:
        directory: str or os.PathLike. A model directory (`keras_bert.save`, a checkpoint converter).
        **kwargs: other `BertTokenizer` arguments (`name`, `max_bytes_per_word`, ...).

    Raises:
        FileNotFoundError: naming the directory, when it has no tokenizer settings or no vocab.txt.
    """
    from keras_bert.tokenization import BertTokenizer

    settings = load_tokenizer_settings(directory, require_vocab=True)
    return BertTokenizer(settings["vocab_file"], lowercase=settings.get("lowercase", True), **kwargs)


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
