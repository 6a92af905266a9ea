"""Progress messages go through stdlib logging (loggers under ``gensar``); the command
line shows them on standard output, as plain lines.

Library callers see them by configuring logging (``logging.basicConfig(level="INFO")``)
or by passing their own ``log`` callable to a stage; ``gensar`` commands call
:func:`console_logging` once.
"""

from __future__ import annotations

import logging
import sys


class _StdoutHandler(logging.Handler):
    """Writes each message to the *current* ``sys.stdout`` (captured or redirected)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def console_logging(level: int = logging.INFO) -> None:
    """Show ``gensar`` progress messages on standard output (idempotent)."""
    logger = logging.getLogger("gensar")
    logger.setLevel(level)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
