"""Helpers of the hostile-input suite (tests/test_hostile_*.py).

``run_cli`` calls the real console entry point (:func:`gensar.cli.main`) in
this process, so a case costs milliseconds instead of an interpreter start,
and sees exactly what a user sees: the exit code and the printed lines.
``assert_one_line_error`` is the outcome every bad input must have.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> CliResult:
    """``gensar ARGS...`` in process: (exit code, stdout, stderr)."""
    from gensar.cli import main

    capsys.readouterr()
    code = 0
    saved = sys.argv
    sys.argv = ["gensar", *(str(a) for a in args)]  # what the console script sees
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def assert_one_line_error(result: CliResult, *words: str) -> str:
    """Exit code 2, one ``error:`` line holding every word (case-insensitive), no traceback."""
    assert "Traceback" not in result.text, result.text[-3000:]
    assert result.code == 2, f"exit code {result.code}: {result.text[-2000:]}"
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one error line, got: {result.err[-2000:]}"
    line = errors[0]
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in: {line}"
    return line


def tree_digest(path: Path) -> str:
    """Names and contents of every file under ``path`` (to prove nothing changed)."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*")):
        digest.update(str(file.relative_to(path)).encode())
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()
