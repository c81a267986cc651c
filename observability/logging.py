"""structlog JSON lines on stdout, with a correlation id bound per request or command."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info") -> None:
    """Render every log line as one JSON object with timestamp and level."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,  # keeps structlog.testing.capture_logs usable
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")


def bind_correlation_id(correlation_id: str) -> None:
    """Attach a correlation id to every log line of the current context."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
