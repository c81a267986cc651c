"""structlog JSON lines on stdout; every line carries ``trace_id`` and ``correlation_id``."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

import structlog

from observability.tracing import current_trace_id

# The request's (or CLI command's) correlation id: one ContextVar set per request, cheaper on
# the hot path than structlog's bound_contextvars (a ContextVar per key, and a scan per line).
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def add_trace_ids(_logger, _method: str, event: dict) -> dict:
    """Name the current trace and correlation id on every line (null outside a request)."""
    event.setdefault("trace_id", current_trace_id())
    event.setdefault("correlation_id", CORRELATION_ID.get())
    return event


def configure_logging(level: str = "info") -> None:
    """Render every log line as one JSON object with timestamp, level and the ids to follow."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
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
    CORRELATION_ID.set(correlation_id)
