"""One generic event-sourced repository: load a stream and fold it; append, evolve and project.

Each kind of aggregate is described once, as a ``Projection``: its stream ids, its fold, and the
projection rows its state becomes. The repository, the rebuild (storage/projections.py) and the
projection audit (storage/audit/projections.py) all work from that one description.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from events.base import Event, EventMetadata, RecordedEvent
from storage import event_store
from storage.checkpoints import set_checkpoint


class Versioned(Protocol):
    """A folded state: it knows the version of the last event applied to it."""

    stream_version: int


S = TypeVar("S", bound=Versioned)
Rows = dict[Table, list[dict[str, Any]]]


@dataclass(frozen=True)
class Projection(Generic[S]):
    """One kind of aggregate: where its events live, how they fold, which rows its state is.

    ``key`` names both the state's id attribute and the id column of its rows; the stream of
    aggregate ``x`` is ``prefix + x``; ``fold(x, [])`` is the empty state of ``x``.
    """

    name: str  # the checkpoint of this projection
    prefix: str
    key: str
    fold: Callable[[str, list[RecordedEvent]], S]
    evolve: Callable[[S, RecordedEvent], object]
    rows: Callable[[S], Rows]
    tables: tuple[Table, ...]

    def stream_id(self, aggregate_id: str) -> str:
        """The event-log stream of one aggregate."""
        return self.prefix + aggregate_id

    def identity(self, state: S) -> str:
        """The id of the aggregate a state belongs to."""
        return getattr(state, self.key)


async def upsert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, or update every given column of the rows with the same primary key."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = insert(table).values(list(rows))
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed))


async def write_projection(conn: AsyncConnection, projection: Projection[S], state: S) -> None:
    """Upsert the projection rows of one aggregate's state."""
    for table, rows in projection.rows(state).items():
        await upsert(conn, table, rows)


class EventSourcedRepository(Generic[S]):
    """Loads and saves one kind of aggregate inside one unit of work's connection.

    A save appends at the state's stream version (ConcurrencyConflict when stale), evolves the
    state in place, and writes its projection rows and checkpoint in the same transaction.
    """

    projection: Projection[Any]

    def __init__(self, conn: AsyncConnection, projection: Projection[S] | None = None) -> None:
        self.conn = conn
        if projection is not None:
            self.projection = projection

    async def load(self, aggregate_id: str) -> S:
        """The aggregate's state folded from its stream (the empty state if it has none)."""
        p = self.projection
        history = await event_store.load_stream(self.conn, p.stream_id(aggregate_id))
        return p.fold(aggregate_id, history)

    async def save(
        self, state: S, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version``, evolve the state, project it; the recorded events."""
        if not events:
            return []
        p = self.projection
        stream_id = p.stream_id(p.identity(state))
        recorded = await event_store.append(
            self.conn, stream_id, state.stream_version, events, metadata
        )
        for r in recorded:
            p.evolve(state, r)
        await write_projection(self.conn, p, state)
        await set_checkpoint(self.conn, p.name, recorded[-1].position)
        return recorded
