"""The model repository over the event log, with its projections kept in the same transaction."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.jobs import fold_job
from domain.registry import ModelState, VersionState, evolve, fold
from events.base import Event, EventMetadata, RecordedEvent
from events.streams import model_stream_id
from storage import event_store
from storage.tables import PROJECTION_TABLES, checkpoints, event_log, model_prod, model_versions

PROJECTION = "registry-projections"
MODEL_STREAM_PREFIX = "model-"


class PostgresModelRepository:
    """Implements domain.ports.ModelRepository."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def registration_lock(self, model_name: str, model_version: str) -> AsyncIterator[None]:
        """A PostgreSQL advisory lock on (model, version), held for the registration."""
        digest = hashlib.sha256(f"register/{model_name}/{model_version}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await conn.commit()

    async def load(self, model_name: str) -> ModelState:
        """Fold the model's stream."""
        async with self.engine.connect() as conn:
            history = await event_store.load_stream(conn, model_stream_id(model_name))
        return fold(model_name, history)

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append and project in one transaction."""
        async with event_store.begin_logged(self.engine) as conn:
            return await save_model_events(conn, state, events, metadata)


async def load_model_state(conn: AsyncConnection, model_name: str) -> ModelState:
    """Fold a model's stream inside the caller's transaction."""
    return fold(model_name, await event_store.load_stream(conn, model_stream_id(model_name)))


async def save_model_events(
    conn: AsyncConnection, state: ModelState, events: list[Event], metadata: EventMetadata
) -> list[RecordedEvent]:
    """Append to a model stream and update its projection, in the caller's transaction."""
    recorded = await event_store.append(
        conn, model_stream_id(state.model_name), state.stream_version, events, metadata
    )
    for r in recorded:
        evolve(state, r)
    await write_projection(conn, state)
    await set_checkpoint(conn, PROJECTION, recorded[-1].position)
    return recorded


async def write_projection(conn: AsyncConnection, state: ModelState) -> None:
    """Upsert a model's rows in model_versions and model_prod from its state."""
    rows = []
    for v in state.versions.values():
        row: dict[str, Any] = version_row(v)
        row["artifact_metadata"] = msgspec.to_builtins(v.metadata)
        rows.append(row)
    if rows:
        stmt = insert(model_versions).values(rows)
        cols = {c: stmt.excluded[c] for c in rows[0] if c not in ("model_name", "model_version")}
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["model_name", "model_version"], set_=cols)
        )
    prod = {
        "model_name": state.model_name,
        "model_version": state.prod,
        "since": state.prod_since,
        "prod_stack": list(state.prod_stack),
    }
    stmt = insert(model_prod).values(prod)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["model_name"],
            set_={k: stmt.excluded[k] for k in ("model_version", "since", "prod_stack")},
        )
    )


async def set_checkpoint(conn: AsyncConnection, name: str, position: int) -> None:
    """Record how far a reader of the log has got."""
    stmt = insert(checkpoints).values(name=name, position=position)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"position": stmt.excluded.position, "updated_at": func.now()},
        )
    )


async def get_checkpoint(conn: AsyncConnection, name: str) -> int:
    """A reader's checkpoint, 0 if it never ran."""
    value = await conn.scalar(select(checkpoints.c.position).where(checkpoints.c.name == name))
    return int(value or 0)


async def rebuild_projections(engine: AsyncEngine) -> int:
    """Drop every projection row and replay the log into them; returns streams replayed."""
    async with engine.begin() as conn:
        # Block appenders so the rebuilt rows and the checkpoint match one log prefix.
        await conn.exec_driver_sql("LOCK TABLE event_log IN EXCLUSIVE MODE")
        for table in PROJECTION_TABLES:
            await conn.execute(delete(table))
        streams = await event_store.stream_ids(conn, MODEL_STREAM_PREFIX)
        for stream_id in streams:
            history = await event_store.load_stream(conn, stream_id)
            await write_projection(conn, fold(stream_id.removeprefix(MODEL_STREAM_PREFIX), history))
        from storage.jobs_repository import JOB_STREAM_PREFIX, write_job_projection

        job_streams = await event_store.stream_ids(conn, JOB_STREAM_PREFIX)
        for stream_id in job_streams:
            history = await event_store.load_stream(conn, stream_id)
            await write_job_projection(
                conn, fold_job(stream_id.removeprefix(JOB_STREAM_PREFIX), history)
            )
        streams += job_streams
        last = await conn.scalar(select(func.coalesce(func.max(event_log.c.position), 0)))
        await set_checkpoint(conn, PROJECTION, int(last))
    return len(streams)


def version_row(v: VersionState) -> dict[str, Any]:
    """The model_versions row of a version, as plain values."""
    return {
        "model_name": v.model_name,
        "model_version": v.model_version,
        "status": v.status,
        "artifact_uri": v.artifact_uri,
        "sha256": v.sha256,
        "size_bytes": v.size_bytes,
        "tags": dict(v.tags),
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        "registered_by": v.registered_by,
        "metrics": v.metrics,
        "evaluations": v.evaluations,
    }
