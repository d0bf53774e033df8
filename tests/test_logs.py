"""Logging goes to stderr only, through the redacting formatter."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mcp_avaya_workflows.logs import configure_logging
from mcp_avaya_workflows.redaction import Redactor

from .conftest import PLANTED_SECRET


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_logs_redacted_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    redactor = Redactor()
    redactor.add_secret(PLANTED_SECRET)
    configure_logging(redactor, "DEBUG")
    logger = logging.getLogger("mcp_avaya_workflows.test")

    logger.info("secret=%s header=%s", PLANTED_SECRET, "Authorization: Bearer abc.def-123")
    try:
        raise ValueError(f"boom {PLANTED_SECRET}")
    except ValueError:
        logger.exception("failed")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "secret=[redacted] header=Authorization: Bearer [redacted]" in captured.err
    assert "ValueError: boom [redacted]" in captured.err
    assert PLANTED_SECRET not in captured.err


@pytest.mark.usefixtures("restore_root_logger")
def test_configure_logging_replaces_own_handler() -> None:
    configure_logging(Redactor())
    configure_logging(Redactor())

    own = [handler for handler in logging.getLogger().handlers if getattr(handler, "_mcp_avaya_workflows", False)]
    assert len(own) == 1
