"""The checks of numbers and text that come from outside, shared by every reader.

Loaders (raw files), the configuration (YAML and ``--set``), ``gensar predict``
and the HTTP service all take timestamps, numbers and text from users. Each
check here raises :class:`ValueProblem` with a short message (what is wrong
with which value); the caller adds where it was (file and line, config field,
request field) and turns it into its own error: a one-line ``DataError``
(exit 2) in the command line, a 422 in the service. One set of rules, so that a
value refused by the loader is also refused by the service.

* Times are integers that fit a signed 64-bit column (Parquet ``Int64``,
  SQLite ``INTEGER``); a float time must be finite and whole.
* Floats must be finite (``inf`` and ``NaN`` are never a meaningful setting or
  timestamp).
* Integers are real integers: ``true`` is not ``1``.
* Text must be encodable as UTF-8: JSON can spell a lone surrogate
  (``"\\ud800"``), which Python decodes into a string that no file, database or
  HTTP response can store.
"""

from __future__ import annotations

import math
import re
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: A JSON escape of a UTF-16 surrogate: the only way a decoded line can hold one.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class ValueProblem(ValueError):
    """A value that cannot be accepted; ``str(err)`` says why, ``fix`` how to correct it."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


def check_int64(value: int, name: str = "value") -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueProblem(
            f"{name} {_short(value)} is outside the 64-bit integer range",
            fix=f"give {name} as an integer between -2^63 and 2^63-1",
        )
    return value


def check_time(value: Any, name: str = "time") -> int:
    """A timestamp (or position) as a 64-bit integer; floats must be finite and whole."""
    if isinstance(value, bool):
        raise ValueProblem(
            f"{name} must be an integer, got {value!r}", fix=f"write {name} as an integer"
        )
    if isinstance(value, int):
        return check_int64(value, name)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueProblem(
                f"{name} is {value!r}, not a finite number", fix=f"write {name} as an integer"
            )
        if value != int(value):
            raise ValueProblem(
                f"{name} {value!r} is not a whole number", fix=f"write {name} as an integer"
            )
        return check_int64(int(value), name)
    raise ValueProblem(
        f"{name} must be an integer, got {type(value).__name__} {_short(value)}",
        fix=f"write {name} as an integer",
    )


def parse_time(text: str, name: str = "time") -> int:
    """A timestamp written in a text file: an integer, or a float such as ``8.8e11``."""
    text = text.strip()
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ValueProblem(
                f"{name} {_short(text)} is not a number", fix=f"write {name} as an integer"
            ) from None
    return check_time(value, name)


def check_finite(value: float, name: str = "value") -> float:
    if not math.isfinite(value):
        raise ValueProblem(f"{name} is {value!r}, not a finite number", fix="give a finite number")
    return value


def check_text(value: str, name: str = "text") -> str:
    """``value`` unchanged if it can be written as UTF-8 (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = ord(value[err.start])
        raise ValueProblem(
            f"{name} contains a lone UTF-16 surrogate (\\u{bad:04x}) that is not a character",
            fix="send valid Unicode text (a surrogate must be part of a pair)",
        ) from None
    return value


def check_json_text(value: Any, name: str = "") -> Any:
    """Every string (keys included) inside a decoded JSON value passes :func:`check_text`."""
    if isinstance(value, str):
        check_text(value, name or "text")
    elif isinstance(value, dict):
        for key, sub in value.items():
            check_text(str(key), f"{name}.{key}" if name else "a key")
            check_json_text(sub, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list):
        for n, sub in enumerate(value):
            check_json_text(sub, f"{name}[{n}]")
    return value


def may_hold_surrogate(line: str) -> bool:
    """Cheap test of a raw JSON line: only an escaped surrogate can put one in the result."""
    return "\\u" in line and _ESCAPED_SURROGATE.search(line) is not None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
