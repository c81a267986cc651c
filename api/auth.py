"""Who is calling: the key's name (set by api/access.py) is the actor recorded on every event."""

from __future__ import annotations

import re
import uuid

from litestar import Request

from events.base import EventMetadata
from observability.tracing import current_traceparent


def actor_for(request: Request) -> str:
    """The actor of a request: the name of its key, as the access check (api/access.py) found it."""
    return getattr(request.state, "actor", None) or "anonymous"


def role_for(request: Request) -> str | None:
    """The role of the request's key (what the access check found), for rules that need it."""
    return getattr(request.state, "role", None)


def event_metadata(request: Request) -> EventMetadata:
    """Actor, correlation id (from X-Correlation-ID when it is a UUID) and trace context."""
    # The middleware chose the request's correlation id (api/middleware.py); logs name it too.
    raw = request.scope.get("state", {}).get("correlation_id") or request.headers.get(
        "x-correlation-id"
    )
    try:
        correlation = uuid.UUID(raw) if raw else uuid.uuid4()
    except ValueError:
        correlation = uuid.uuid4()
    return EventMetadata(
        actor=actor_for(request),
        correlation_id=correlation,
        # The server span's context, so the workers' spans join the request's trace.
        trace_context=current_traceparent() or traceparent(request.headers.get("traceparent")),
    )


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def traceparent(raw: str | None) -> str | None:
    """A valid W3C traceparent, else None: an invalid one is ignored, as the spec says."""
    value = (raw or "").strip()
    if not _TRACEPARENT.fullmatch(value):
        return None
    version, trace_id, parent_id, _ = value.split("-")
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value
