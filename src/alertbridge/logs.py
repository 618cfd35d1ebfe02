"""Structured JSON logs, with anything that looks like a credential redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|apikey|pat)$", re.IGNORECASE)
# Credentials that slip into free text: bearer/basic headers, token= query parameters.
_SECRET_TEXT = re.compile(r"(?i)(bearer\s+|basic\s+|token=|secret=|password=)[^\s&\"']+")


def redact(_logger, _method, event: dict) -> dict:
    """Replace credential values in a log event, by key and inside text."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _SECRET_TEXT.sub(r"\1[redacted]", value)
    return event


def redact_data(value: Any) -> Any:
    """Return a copy of decoded JSON (or text) with credential values replaced, by key and inside text."""
    if isinstance(value, dict):
        return {k: "[redacted]" if isinstance(k, str) and _SECRET_KEYS.search(k) and v not in (None, "") else redact_data(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, str):
        return _SECRET_TEXT.sub(r"\1[redacted]", value)
    return value


def configure_logging(level: str = "INFO") -> None:
    """Send JSON lines to stderr for the whole process."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one plain-text, unredacted line (full URL) per vendor call
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=True,
    )


class _StderrLogger:
    """Write each line to whatever sys.stderr is now (tests and embedders swap it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = error = critical = exception = msg
