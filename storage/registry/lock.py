"""The registration lock: one registration of a (model, version) at a time, across hosts."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import ServiceUnavailable
from storage.errors import postgres_errors


class PostgresRegistrationLock:
    """Implements domain.ports.RegistrationLock: a transaction-scoped advisory lock per version.

    A registration holds this lock's connection and then a unit of work's, so a process runs at
    most ``concurrency`` of them at once (and never more than half its pool): many at once then
    wait their turn instead of each holding one connection and starving for a second. A turn or
    a lock not had within ``wait_s`` is ServiceUnavailable (503 with Retry-After). The lock goes
    with its transaction, so no error path can leave it held in a pooled connection.
    """

    def __init__(self, engine: AsyncEngine, concurrency: int = 4, wait_s: float = 30.0) -> None:
        self.engine = engine
        pool = engine.pool.size() if hasattr(engine.pool, "size") else concurrency * 2
        self.turns = asyncio.Semaphore(max(1, min(concurrency, pool // 2)))
        self.wait_s = wait_s

    @asynccontextmanager
    async def __call__(self, model_name: str, model_version: str) -> AsyncIterator[None]:
        """Hold the advisory lock of (model, version) for the block."""
        digest = hashlib.sha256(f"register/{model_name}/{model_version}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        try:
            await asyncio.wait_for(self.turns.acquire(), self.wait_s)
        except TimeoutError:
            raise ServiceUnavailable("too many registrations in progress; retry shortly") from None
        try:
            async with postgres_errors(), self.engine.connect() as conn:
                # The block copies files and runs other transactions while this one is idle.
                await conn.execute(
                    text(
                        "SELECT set_config('lock_timeout', :wait, true), "
                        "set_config('idle_in_transaction_session_timeout', '0', true)"
                    ),
                    {"wait": str(int(self.wait_s * 1000))},
                )
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                yield  # leaving the block ends the transaction, which releases the lock
        finally:
            self.turns.release()
