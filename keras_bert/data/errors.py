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
