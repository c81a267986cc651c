"""The PostgreSQL unit of work: one transaction over the event log, projections and bookkeeping."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import event_store
from storage.errors import postgres_error
from storage.gates.repository import PostgresGateStore
from storage.jobs.repository import PostgresJobStore
from storage.keys.repository import PostgresKeyStore
from storage.registry.repository import PostgresModelStore
from storage.tables import processed


class PostgresUnitOfWork:
    """Implements domain.ports.UnitOfWork; commits when the block ends without an error."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._tx: AbstractAsyncContextManager[AsyncConnection] | None = None

    async def __aenter__(self) -> Self:
        self._tx = event_store.begin_logged(self._engine)
        try:
            conn = await self._tx.__aenter__()
        except Exception as exc:
            mapped = postgres_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        self.models = PostgresModelStore(conn)
        self.jobs = PostgresJobStore(conn)
        self.gates = PostgresGateStore(conn)
        self.keys = PostgresKeyStore(conn)
        self._conn = conn
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        try:
            await self._tx.__aexit__(exc_type, exc, tb)
        except Exception as failure:  # the commit itself failed
            mapped = postgres_error(failure)
            if mapped is None:
                raise
            raise mapped from failure
        if exc is not None and isinstance(exc, Exception):
            mapped = postgres_error(exc)
            if mapped is not None:
                raise mapped from exc

    async def mark_processed(self, group: str, event_id: Any) -> bool:
        """Record that ``group`` handled ``event_id``; False if it already had."""
        result = await self._conn.execute(
            insert(processed)
            .values(group_name=group, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(processed.c.event_id)
        )
        return result.first() is not None


def unit_of_work_factory(engine: AsyncEngine):
    """A callable returning a fresh unit of work per use."""

    def new() -> PostgresUnitOfWork:
        return PostgresUnitOfWork(engine)

    return new
