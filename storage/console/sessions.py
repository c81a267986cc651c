"""Console sessions in PostgreSQL, so every API process sees the same ones.

PostgreSQL rather than Redis: the console reads PostgreSQL on every page anyway (no new way to
fail), one statement checks a session's age and its key's revocation against the database's
clock, and Redis is where this platform's threat model puts writers it does not trust.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, exists, func, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.console.sessions import ConsoleSession, NewSession, SessionLimits
from storage.errors import on_postgres
from storage.tables import api_keys, console_sessions

_s = console_sessions.c


def _expired(limits: SessionLimits) -> ColumnElement[bool]:
    now = func.now()
    return or_(
        _s.last_seen_at <= now - timedelta(seconds=max(1.0, limits.idle_s)),
        _s.created_at <= now - timedelta(seconds=max(1.0, limits.max_s)),
    )


class PostgresSessionStore:
    """Implements domain.console.sessions.SessionStore."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def open(self, session_hash: str, session: NewSession, limits: SessionLimits) -> None:
        """Keep a new session and drop the expired ones (so the table holds live sessions)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(_expired(limits)))
            await conn.execute(
                insert(console_sessions).values(
                    session_hash=session_hash,
                    key_hash=session.key_hash,
                    key_name=session.key_name,
                    role=session.role,
                    csrf_secret=session.csrf_secret,
                )
            )

    @on_postgres
    async def touch(
        self, session_hash: str, limits: SessionLimits, bootstrap_keys: Collection[str]
    ) -> ConsoleSession | None:
        """The live session, now last seen; None (and the row gone) when expired or revoked."""
        active = exists().where(api_keys.c.key_hash == _s.key_hash, api_keys.c.active)
        q = (
            update(console_sessions)
            .where(
                _s.session_hash == session_hash,
                ~_expired(limits),
                or_(_s.key_hash.in_(sorted(bootstrap_keys)), active),
            )
            .values(last_seen_at=func.now())
            .returning(
                _s.key_name, _s.role, _s.csrf_secret, _s.created_at, _s.last_seen_at, _s.key_hash
            )
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(q)).first()
            if row is None:
                await conn.execute(delete(console_sessions).where(_s.session_hash == session_hash))
                return None
        return ConsoleSession(**row._asdict())

    @on_postgres
    async def close(self, session_hash: str) -> None:
        """End a session (logout); a session already gone is no error."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(_s.session_hash == session_hash))
