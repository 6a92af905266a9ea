"""User-facing errors.

Every problem a user can fix (bad input, a missing file, an option out of range)
is raised as :class:`GensarError` with a one-line message that says what is
wrong, where (file, line, field) and how to fix it. The CLI prints that line and
exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class GensarError(Exception):
    """An error the user can act on; ``str(err)`` is the whole message."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | Path | None = None, fix: str | None = None):
        parts = []
        if where is not None:
            parts.append(f"{where}:")
        parts.append(message.rstrip("."))
        text = " ".join(parts)
        if fix:
            text += f". Fix: {fix.rstrip('.')}"
        super().__init__(text + ".")


class DataError(GensarError):
    """The input data (raw logs or a prepared directory) is invalid."""


class ConfigError(GensarError):
    """A configuration file or option is invalid."""
