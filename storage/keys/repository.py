"""API keys over the event log, with their api_keys projection kept in the same transaction."""

from __future__ import annotations

from sqlalchemy import select

from domain.keys.aggregate import ApiKeyState
from storage.keys.projection import KEYS
from storage.repository import EventSourcedRepository
from storage.tables import api_keys


class PostgresKeyStore(EventSourcedRepository[ApiKeyState]):
    """Implements domain.keys.ports.KeyStore inside one unit of work's connection."""

    projection = KEYS

    async def active_admins(self) -> list[str]:
        """Names of the active admin keys, their rows locked until the transaction ends.

        A concurrent revocation waits here and then sees this one's outcome (READ COMMITTED
        re-checks a locked row once it is released), so two at once cannot both pass.
        """
        q = (
            select(api_keys.c.key_name)
            .where(api_keys.c.role == "admin", api_keys.c.active)
            .order_by(api_keys.c.key_name)
            .with_for_update()
        )
        return list((await self.conn.scalars(q)).all())
