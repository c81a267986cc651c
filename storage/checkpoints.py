"""Checkpoints: how far each reader of the log (a projection, the relay, retention) has got."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import checkpoints


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
