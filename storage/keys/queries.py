"""Read-side queries over api_keys: the per-request lookup by hash, and the key list."""

from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.keys.aggregate import KeyIdentity, KeyView
from storage.errors import on_postgres
from storage.tables import api_keys


class KeyQueries:
    """Implements domain.keys.ports.KeyReader."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def identify(self, key_hash: str) -> KeyIdentity | None:
        """The active key with this SHA-256 (one unique-index lookup), None if none."""
        q = select(api_keys.c.key_name, api_keys.c.role).where(
            api_keys.c.key_hash == key_hash, api_keys.c.active
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return KeyIdentity(key_name=row.key_name, role=row.role) if row else None

    @on_postgres
    async def any_active(self) -> bool:
        """Whether any key is active (a database not migrated yet has none)."""
        async with self.engine.connect() as conn:
            if not await conn.scalar(select(func.to_regclass("api_keys"))):
                return False
            return bool(await conn.scalar(select(exists().where(api_keys.c.active))))

    @on_postgres
    async def list_keys(self, after: str | None, limit: int) -> list[KeyView]:
        """Keys (active and revoked) by name, after ``after``."""
        q = select(api_keys).order_by(api_keys.c.key_name).limit(limit)
        if after is not None:
            q = q.where(api_keys.c.key_name > after)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            KeyView(
                key_name=r.key_name,
                role=r.role,
                active=r.active,
                created_at=r.created_at,
                created_by=r.created_by,
                revoked_at=r.revoked_at,
                revoked_by=r.revoked_by,
            )
            for r in rows
        ]
