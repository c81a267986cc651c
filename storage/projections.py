"""Every projection (the read models) of the log, and their rebuild from it.

Each context describes its projection once (storage/<context>/projection.py); the repositories
write it in the appender's transaction, and a rebuild (or the audit) replays the log into it.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import event_store
from storage.checkpoints import get_checkpoint, set_checkpoint
from storage.gates.projection import GATE_PROJECTION, GATES
from storage.jobs.projection import JOB_PROJECTION, JOBS
from storage.keys.projection import KEY_PROJECTION, KEYS
from storage.online.projection import ONLINE
from storage.registry.projection import MODELS, REGISTRY_PROJECTION
from storage.repository import Projection, write_projection
from storage.tables import PROJECTION_TABLES, event_log
from storage.traffic.projection import CAPTURES

__all__ = [
    "GATE_PROJECTION",
    "JOB_PROJECTION",
    "KEY_PROJECTION",
    "PROJECTIONS",
    "REGISTRY_PROJECTION",
    "get_checkpoint",
    "project_all",
    "rebuild_projections",
    "set_checkpoint",
]

PROJECTIONS: tuple[Projection, ...] = (MODELS, JOBS, GATES, KEYS, CAPTURES, ONLINE)


async def project_all(conn: AsyncConnection) -> int:
    """Replay every projected stream of the log into the projection tables; streams done."""
    done = 0
    for projection in PROJECTIONS:
        for stream_id in await event_store.stream_ids(conn, projection.prefix):
            history = await event_store.load_stream(conn, stream_id)
            state = projection.fold(stream_id.removeprefix(projection.prefix), history)
            await write_projection(conn, projection, state)
            done += 1
    return done


async def rebuild_projections(engine: AsyncEngine) -> int:
    """Drop every projection row and replay the log into them; returns streams replayed."""
    async with engine.begin() as conn:
        # Block appenders so the rebuilt rows and the checkpoints match one log prefix (the
        # advisory lock every appender takes: the app role may not LOCK TABLE event_log).
        await event_store.lock_appends(conn)
        for table in (*PROJECTION_TABLES, *ONLINE.tables):
            await conn.execute(delete(table))
        count = await project_all(conn)
        last = int(await conn.scalar(select(func.coalesce(func.max(event_log.c.position), 0))))
        for projection in PROJECTIONS:
            await set_checkpoint(conn, projection.name, last)
    return count
