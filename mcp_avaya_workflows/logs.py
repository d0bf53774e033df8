"""Logging to stderr through a formatter that redacts credentials.

stdout carries the stdio protocol, so nothing may log there. The formatter
scrubs the whole rendered record, traceback included, so a secret passed as
an argument or inside an exception message never reaches a log line.
"""

from __future__ import annotations

import logging
import sys

from .redaction import Redactor

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formatter that passes every rendered record through `Redactor.scrub_text`."""

    def __init__(self, redactor: Redactor, fmt: str = _FORMAT) -> None:
        super().__init__(fmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.scrub_text(super().format(record))


def configure_logging(redactor: Redactor, level: str = "INFO") -> None:
    """Send all logs to stderr through the redacting formatter, replacing handlers set earlier."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_mcp_avaya_workflows", False):
            root.removeHandler(existing)
    handler._mcp_avaya_workflows = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx2 logs every request URL at INFO; the client logs its own line without tokens.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.WARNING)
