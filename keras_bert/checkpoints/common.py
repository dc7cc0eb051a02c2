"""Helpers shared by the importers: building the model, finding files, tokenizer casing."""

import json
import os

_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_model(config, heads):
    """A fresh `BertPretrainer` (with heads) or `BertEncoder` for `config`.

    Args:
        config: `BertConfig`.
        heads: bool. Build the pretraining heads too.
    """
    from keras_bert.models import BertEncoder, BertPretrainer

    encoder = BertEncoder(config)
    return BertPretrainer(encoder) if heads else encoder


def read_json(path):
    """Reads a JSON file, with the path in the error when it is not valid JSON.

    Args:
        path: str. The file.
    """
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e


def vocab_is_cased(vocab_file):
    """Guesses casing from a WordPiece vocabulary: cased when ordinary tokens hold capitals.

    Args:
        vocab_file: str. Path to `vocab.txt`.

    Returns:
        bool: True when the vocabulary is cased.
    """
    uppercase = 0
    with open(vocab_file, encoding="utf-8") as f:
        for line in f:
            token = line.rstrip("\n")
            if token in _SPECIAL or (token.startswith("[") and token.endswith("]")):
                continue
            if token != token.lower():
                uppercase += 1
                if uppercase >= 10:
                    return True
    return False


def find_file(directory, names):
    """The first of `names` that exists in `directory`, or None.

    Args:
        directory: str. Folder to look in.
        names: sequence of str. Candidate file names, in order of preference.
    """
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def vocab_size_of(vocab_file):
    """Number of lines (tokens) of a `vocab.txt`.

    Args:
        vocab_file: str. Path to the vocabulary.
    """
    with open(vocab_file, encoding="utf-8") as f:
        return sum(1 for _ in f)


def check_vocab(vocab_file, config):
    """Raises when the vocabulary holds more tokens than the model has embeddings.

    Args:
        vocab_file: str or None. Path to the vocabulary.
        config: `BertConfig`.
    """
    if vocab_file is None:
        return
    size = vocab_size_of(vocab_file)
    if size > config.vocab_size:
        raise ValueError(f"{vocab_file} holds {size} tokens but the model's vocab_size is {config.vocab_size}")
