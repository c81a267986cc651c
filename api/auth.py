"""Who is calling: API keys map to actor names recorded on every event."""

from __future__ import annotations

import hmac
import uuid

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from events.base import EventMetadata
from settings import Settings


def actor_for(request: Request, settings: Settings) -> str:
    """The actor name of a write request; 401 when keys are configured and none matches."""
    if not settings.api_keys:
        return "anonymous"
    given = request.headers.get("x-api-key", "")
    for key, name in settings.api_keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            return name
    raise NotAuthorizedException("a valid X-API-Key header is required for this request")


def event_metadata(request: Request, settings: Settings) -> EventMetadata:
    """Actor, correlation id (from X-Correlation-ID when it is a UUID) and trace context."""
    raw = request.headers.get("x-correlation-id")
    try:
        correlation = uuid.UUID(raw) if raw else uuid.uuid4()
    except ValueError:
        correlation = uuid.uuid4()
    return EventMetadata(
        actor=actor_for(request, settings),
        correlation_id=correlation,
        trace_context=request.headers.get("traceparent"),
    )
