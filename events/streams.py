"""Stream naming: event log streams (per aggregate) and Redis Streams (per area)."""

from __future__ import annotations

from events.base import Event

REGISTRY_STREAM = "registry.events"


def area_stream(area: str) -> str:
    """The Redis stream that carries an area's events, e.g. ``registry.events``."""
    return f"{area}.events"


def stream_for_event(event: Event) -> str:
    """The Redis stream an event is relayed to."""
    return area_stream(event.area)


def model_stream_id(model_name: str) -> str:
    """The event-log stream id of one registered model."""
    return f"model-{model_name}"
