"""Audit endpoints: the trail paged by position, a model at a moment, the AsyncAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import FromPath, QueryParameter

from api.deps import Port
from domain import names
from domain.audit.reports import AuditPort, EventsPage, ModelAt, TrailFilter, parse_time

Audit = Port[AuditPort]


class AuditController(Controller):
    """Replay and point-in-time queries over the event log."""

    tags = ["audit"]

    @get("/events", summary="The audit trail, paginated by log position")
    async def events(
        self,
        audit: Audit,
        after: Annotated[
            int, QueryParameter(ge=0, le=2**63 - 1, description="events after this position")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        model: Annotated[str | None, QueryParameter(description="events about this model")] = None,
        event_type: Annotated[str | None, QueryParameter(name="type")] = None,
    ) -> EventsPage:
        """Events after a position (oldest first); ask again with ``after=next_after``."""
        f = TrailFilter(
            after=after,
            model=names.check_model_name(model) if model is not None else None,
            event_type=event_type,
        )
        entries, next_after = await audit.page(f, limit)
        return EventsPage(events=entries, next_after=next_after)

    @get("/models/{name:str}", summary="A model's versions and prod, now or at a moment (?at=)")
    async def model_at(
        self,
        audit: Audit,
        name: FromPath[str],
        at: Annotated[str | None, QueryParameter(description="ISO 8601; default now")] = None,
    ) -> ModelAt:
        """Which versions existed and which was prod at ``at``, folded from the log."""
        moment = parse_time(at, "at") if at else datetime.now(UTC)
        return await audit.model_at(names.check_model_name(name), moment)


@cache
def _asyncapi() -> bytes:
    from events.asyncapi import document_json

    return document_json()


@get("/asyncapi.json", tags=["audit"], summary="AsyncAPI 3 document of the event streams")
async def asyncapi() -> Response[bytes]:
    """Every stream and event payload, generated from the msgspec types."""
    return Response(_asyncapi(), media_type="application/json")
