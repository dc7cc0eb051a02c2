"""WordPiece vocabulary loading, validation and writing."""

import os

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class VocabularyError(ValueError):
    """Raised when a vocabulary file or list is not a valid BERT WordPiece vocabulary."""


def validate_vocabulary(tokens, source="<list>"):
    """Checks a token list for empty entries, duplicates and missing reserved tokens.

    Args:
        tokens: list[str], the vocabulary, index = token id.
        source: str, file name (or description) used in error messages.

    Raises:
        VocabularyError: naming `source` and the 1-based line of the problem.
    """
    seen = {}
    for index, token in enumerate(tokens):
        line = index + 1
        if not isinstance(token, str):
            raise VocabularyError(f"{source}:{line}: token is not a string: {token!r}")
        if token.strip() == "":
            raise VocabularyError(f"{source}:{line}: empty vocabulary entry")
        if token != token.strip():
            raise VocabularyError(
                f"{source}:{line}: token {token!r} has leading/trailing whitespace"
            )
        if token in seen:
            raise VocabularyError(
                f"{source}:{line}: duplicate token {token!r} (first seen on line {seen[token]})"
            )
        seen[token] = line
    missing = [t for t in RESERVED_TOKENS if t not in seen]
    if missing:
        raise VocabularyError(
            f"{source}: reserved token(s) {', '.join(missing)} missing from the vocabulary "
            f"(BERT needs all of {' '.join(RESERVED_TOKENS)})"
        )


def load_vocabulary(path):
    """Reads a WordPiece vocab.txt (one token per line, id = line index) and validates it.

    Args:
        path: str or os.PathLike, the vocabulary file.

    Returns:
        list[str]: the tokens, index = token id.

    Raises:
        VocabularyError: on undecodable bytes, empty lines, duplicates (with the line
            number) or a missing reserved token ([PAD] [UNK] [CLS] [SEP] [MASK]).
    """
    path = os.fspath(path)
    tokens = []
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise VocabularyError(f"{path}:{line_number}: not valid UTF-8 ({error})") from None
            text = text.rstrip("\r\n")
            tokens.append(text)
    # A single trailing empty line (file ending in "\n\n") is still an error: it would be a token.
    validate_vocabulary(tokens, source=path)
    return tokens


def write_vocabulary(tokens, path):
    """Writes a vocab.txt (one token per line) atomically: a crash never leaves half a file under `path`.

    Args:
        tokens: list[str], the vocabulary, index = token id (validated first).
        path: str or os.PathLike, the file to write; its directory is created if missing.

    Returns:
        str: the path.
    """
    path = os.fspath(path)
    validate_vocabulary(tokens, source=path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    staging = path + ".tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write("\n".join(tokens) + "\n")
    os.replace(staging, path)
    return path
