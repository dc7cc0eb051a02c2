"""Errors and skip counters shared by the data readers."""

import collections


class DataError(ValueError):
    """Bad input data; the message names the file and (1-based) line or record."""


def where(path, line=None):
    """Formats a location for error messages.

    Args:
        path: str, file name.
        line: int or None, 1-based line (or record) number.

    Returns:
        str: "path:line" or "path".
    """
    return f"{path}:{line}" if line is not None else str(path)


class SkipCounter(collections.Counter):
    """Counts skipped or repaired inputs by reason, for job summaries."""

    def summary(self):
        """Returns a one-line human readable summary.

        Returns:
            str: e.g. "skipped: empty_line=3, label_not_in_set=1" or "nothing skipped".
        """
        if not self:
            return "nothing skipped"
        return "skipped/repaired: " + ", ".join(f"{k}={v}" for k, v in sorted(self.items()))


def decode_error(path, data, error, offset=0, line=None):
    """A DataError for bytes that are not UTF-8: names the file, the 1-based line and the byte.

    Args:
        path: str, the file.
        data: bytes, what was decoded (the whole file, or one line).
        error: UnicodeDecodeError.
        offset: int, byte offset of `data` in the file.
        line: int or None, the line of `data`; None counts lines in `data` (the whole file).
    """
    if line is None:
        line = data[: error.start].count(b"\n") + 1
    return DataError(f"{path}:{line}: not UTF-8 text ({error.reason}, byte 0x{data[error.start]:02x} at byte "
                     f"{offset + error.start}); re-encode the file as UTF-8")


def read_text(path):
    """Reads a whole UTF-8 text file (a leading BOM is dropped); bad bytes are a DataError naming line and byte.

    Args:
        path: str, the file.

    Returns:
        str, the text, newlines kept as they are.

    Raises:
        DataError: the file is missing, not UTF-8, or holds a NUL byte (binary data).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    if data.startswith(b"\xef\xbb\xbf"):  # The UTF-8 BOM some editors write; as encoding="utf-8-sig".
        data = data[3:]
        bom = 3
    else:
        bom = 0
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise decode_error(path, data, error, offset=bom) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DataError(f"{path}:{line}: binary data (NUL byte at byte {bom + nul}), not a text file")
    return text


def no_examples(path, what="examples"):
    """The DataError of a file that holds no examples."""
    return DataError(f"{path}: no examples (the file holds no {what})" if what != "examples"
                     else f"{path}: no examples")


def read_json_lines(path):
    """Yields `(line number, record)` of a JSON-lines file: each record a dict, None for a blank line.

    Raises:
        DataError: as `read_text`, or a line that is not JSON or not a JSON object (file and line named).
    """
    import io
    import json

    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        if not line.strip():
            yield number, None
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: invalid JSON ({error.msg}, column {error.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object with named fields, got a "
                            f"{type(record).__name__}")
        yield number, record
