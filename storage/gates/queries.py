"""Read-side queries over the gates projection, and the gate events of a model's history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import NotFound, UnknownModel
from domain.gates.aggregate import check_gate_id
from domain.gates.views import GateView, gate_view
from domain.paging.cursors import decode_cursor, page_of
from domain.registry.approvals import PromotionRequestView, request_views
from domain.registry.gate_policy import MAX_REQUEST_AGE_S
from domain.registry.state import fold
from events.base import RecordedEvent
from events.streams import MODEL_STREAM_PREFIX, gate_stream_id
from storage import event_store
from storage.errors import on_postgres
from storage.tables import event_log, gates, model_prod

MAX_MODELS = 200  # models with recent requests folded per listing

MAX_MODELS = 200  # models with recent requests folded per listing


class GateQueries:
    """Gate lookups for the API and the CLI (implements domain.ports.GateReader)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def get(self, gate_id: str) -> GateView:
        """One gate; NotFound if unknown."""
        check_gate_id(gate_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(gates).where(gates.c.gate_id == gate_id))).first()
        if row is None:
            raise NotFound(f"unknown gate {gate_id!r}")
        return gate_view(row._asdict())

    @on_postgres
    async def page_for_model(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[GateView], str | None]:
        """A model's gates, newest first, a page at a time; NotFound for an unknown model."""
        q = select(gates).where(gates.c.model_name == model_name)
        if cursor:
            at, gate_id = decode_cursor(cursor, datetime, str)
            q = q.where(tuple_(gates.c.requested_at, gates.c.gate_id) < tuple_(at, gate_id))
        q = q.order_by(gates.c.requested_at.desc(), gates.c.gate_id.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [gate_view(r._asdict()) for r in (await conn.execute(q)).all()]
            if not rows and not cursor:
                known = await conn.scalar(
                    select(model_prod.c.model_name).where(model_prod.c.model_name == model_name)
                )
                if known is None:
                    raise UnknownModel(model_name)
        return page_of(rows, limit, lambda g: (g.requested_at, g.gate_id))

    @on_postgres
    async def pending_promotions(self, now: datetime) -> list[PromotionRequestView]:
        """Open promotion requests of every model, oldest first (models with a recent request
        are folded from their streams: the request's state lives there)."""
        recent = (
            select(event_log.c.stream_id)
            .where(
                event_log.c.event_type == "PromotionRequested",
                event_log.c.recorded_at >= now - timedelta(seconds=MAX_REQUEST_AGE_S),
            )
            .distinct()
        )
        views: list[PromotionRequestView] = []
        async with self.engine.connect() as conn:
            for stream_id in sorted((await conn.execute(recent)).scalars())[:MAX_MODELS]:
                rows = await conn.execute(
                    select(event_log)
                    .where(event_log.c.stream_id == stream_id)
                    .order_by(event_log.c.position)
                )
                name = stream_id.removeprefix(MODEL_STREAM_PREFIX)
                state = fold(name, [event_store.to_recorded(r) for r in rows])
                views += request_views(state, now)
        return sorted(views, key=lambda v: v.requested_at)


async def gate_history(conn: AsyncConnection, model_name: str) -> list[RecordedEvent]:
    """Every event of every gate of a model, in log order (for the model's history)."""
    ids = select(gates.c.gate_id).where(gates.c.model_name == model_name)
    gate_ids = list((await conn.execute(ids)).scalars())
    if not gate_ids:
        return []
    rows = await conn.execute(
        select(event_log)
        .where(event_log.c.stream_id.in_([gate_stream_id(g) for g in gate_ids]))
        .order_by(event_log.c.position)
    )
    return [event_store.to_recorded(r) for r in rows]
