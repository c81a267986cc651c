"""Projections (the read models) and checkpoints, written in the appender's transaction.

Kept apart from the repositories so both the model and the job store use them without
importing each other, and so a rebuild (or an audit) can replay the log into them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.gates.aggregate import GateState
from domain.gates.aggregate import fold as fold_gate
from domain.gates.views import gate_row
from domain.jobs.aggregate import JobState, fold_job, job_row
from domain.keys.aggregate import ApiKeyState, fold_key, key_row
from domain.registry.decisions import ModelState, VersionState, fold
from events.keys import KEY_STREAM_PREFIX
from events.streams import GATE_STREAM_PREFIX, JOB_STREAM_PREFIX, MODEL_STREAM_PREFIX
from storage import event_store
from storage.tables import (
    PROJECTION_TABLES,
    api_keys,
    batch_jobs,
    checkpoints,
    event_log,
    gates,
    model_prod,
    model_versions,
)

REGISTRY_PROJECTION = "registry-projections"
JOB_PROJECTION = "job-projections"
GATE_PROJECTION = "gate-projections"
KEY_PROJECTION = "key-projections"


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
        "artifact_metadata": msgspec.to_builtins(v.metadata),
    }


async def write_model_projection(conn: AsyncConnection, state: ModelState) -> None:
    """Upsert a model's rows in model_versions and model_prod from its state."""
    rows = [version_row(v) for v in state.versions.values()]
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


async def write_job_projection(conn: AsyncConnection, state: JobState) -> None:
    """Upsert the job's batch_jobs row."""
    row = job_row(state)
    stmt = insert(batch_jobs).values(row)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["job_id"], set_={k: stmt.excluded[k] for k in row if k != "job_id"}
        )
    )


async def write_key_projection(conn: AsyncConnection, state: ApiKeyState) -> None:
    """Upsert the key's api_keys row."""
    row = key_row(state)
    stmt = insert(api_keys).values(row)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["key_name"], set_={k: stmt.excluded[k] for k in row if k != "key_name"}
        )
    )


async def write_gate_projection(conn: AsyncConnection, state: GateState) -> None:
    """Upsert the gate's gates row."""
    row = gate_row(state)
    stmt = insert(gates).values(row)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["gate_id"], set_={k: stmt.excluded[k] for k in row if k != "gate_id"}
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


async def project_all(conn: AsyncConnection) -> int:
    """Replay every model and job stream of the log into the projection tables; streams done."""
    streams = await event_store.stream_ids(conn, MODEL_STREAM_PREFIX)
    for stream_id in streams:
        history = await event_store.load_stream(conn, stream_id)
        await write_model_projection(
            conn, fold(stream_id.removeprefix(MODEL_STREAM_PREFIX), history)
        )
    job_streams = await event_store.stream_ids(conn, JOB_STREAM_PREFIX)
    for stream_id in job_streams:
        history = await event_store.load_stream(conn, stream_id)
        await write_job_projection(
            conn, fold_job(stream_id.removeprefix(JOB_STREAM_PREFIX), history)
        )
    key_streams = await event_store.stream_ids(conn, KEY_STREAM_PREFIX)
    for stream_id in key_streams:
        history = await event_store.load_stream(conn, stream_id)
        await write_key_projection(
            conn, fold_key(stream_id.removeprefix(KEY_STREAM_PREFIX), history)
        )
    gate_streams = await event_store.stream_ids(conn, GATE_STREAM_PREFIX)
    for stream_id in gate_streams:
        history = await event_store.load_stream(conn, stream_id)
        await write_gate_projection(
            conn, fold_gate(stream_id.removeprefix(GATE_STREAM_PREFIX), history)
        )
    return len(gate_streams) + len(streams) + len(job_streams) + len(key_streams)


async def rebuild_projections(engine: AsyncEngine) -> int:
    """Drop every projection row and replay the log into them; returns streams replayed."""
    async with engine.begin() as conn:
        # Block appenders so the rebuilt rows and the checkpoints match one log prefix (the
        # advisory lock every appender takes: the app role may not LOCK TABLE event_log).
        await event_store.lock_appends(conn)
        for table in PROJECTION_TABLES:
            await conn.execute(delete(table))
        count = await project_all(conn)
        last = int(await conn.scalar(select(func.coalesce(func.max(event_log.c.position), 0))))
        await set_checkpoint(conn, REGISTRY_PROJECTION, last)
        await set_checkpoint(conn, JOB_PROJECTION, last)
        await set_checkpoint(conn, GATE_PROJECTION, last)
        await set_checkpoint(conn, KEY_PROJECTION, last)
    return count
