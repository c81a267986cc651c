"""Ports of API keys: the read-side lookup, and the ports the key handlers take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from domain.keys.aggregate import KeyIdentity, KeyView
from domain.ports import UnitOfWorkFactory


class KeyReader(Protocol):
    """Read side of API keys: the lookup every authenticated request makes."""

    async def identify(self, key_hash: str) -> KeyIdentity | None:
        """The active key with this SHA-256, None if there is none."""
        ...

    async def any_active(self) -> bool:
        """Whether any key is active (no key at all means anonymous use, on loopback only)."""
        ...

    async def list_keys(self, after: str | None, limit: int) -> list[KeyView]:
        """Keys ordered by name, after the name ``after``."""
        ...


@dataclass(frozen=True, kw_only=True)
class KeyPorts:
    """What the key handlers use: the unit of work and the source of new secrets."""

    uow: UnitOfWorkFactory
    new_secret: Callable[[], str]
