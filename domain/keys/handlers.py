"""API-key use cases: create (the key is returned once, only its hash is kept) and revoke."""

from __future__ import annotations

import secrets

import msgspec

from domain.keys.aggregate import (
    ApiKeyState,
    check_key_name,
    check_not_last_admin,
    check_role,
    decide_key,
    hash_key,
)
from domain.keys.commands import CreateApiKey, IssueApiKey, KeyCommand, RevokeApiKey
from domain.keys.ports import KeyPorts
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.transactions import in_transaction
from events.base import EventMetadata, RecordedEvent

KEY_PREFIX = "iep_"  # recognisable in logs and by secret scanners


def new_secret() -> str:
    """A fresh key: 32 random bytes (256 bits) from the OS, URL-safe, with a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyResult(msgspec.Struct, kw_only=True):
    """What a key command did; ``secret`` is the new key, shown once and never stored."""

    state: ApiKeyState
    recorded: list[RecordedEvent]
    secret: str | None = None

    @property
    def changed(self) -> bool:
        """False when the command was a no-op repeat."""
        return bool(self.recorded)


async def _change_key(
    command: KeyCommand, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> KeyResult:
    async def work(tx: UnitOfWork) -> KeyResult:
        state = await tx.keys.load(command.key_name)
        events = decide_key(state, command)
        if events and isinstance(command, RevokeApiKey):
            # Checked in the transaction that saves, on rows it holds until it commits.
            check_not_last_admin(state, await tx.keys.active_admins(), command.force)
        recorded = await tx.keys.save(state, events, metadata) if events else []
        return KeyResult(state=state, recorded=recorded)

    return await in_transaction(uow, work, f"key {command.key_name!r}")


async def create_api_key(cmd: CreateApiKey, ports: KeyPorts) -> KeyResult:
    """Issue a key to ``key_name``; the result carries the key, the log only its SHA-256."""
    check_key_name(cmd.key_name)
    check_role(cmd.role)
    secret = ports.new_secret()
    issue = IssueApiKey(
        key_name=cmd.key_name, role=cmd.role, key_hash=hash_key(secret), reason=cmd.reason
    )
    result = await _change_key(issue, cmd.metadata, ports.uow)
    result.secret = secret
    return result


async def revoke_api_key(cmd: RevokeApiKey, ports: KeyPorts) -> KeyResult:
    """Revoke ``key_name``'s key; revoking a revoked key changes nothing, and the last active
    admin key goes only with ``force`` and a reason."""
    return await _change_key(cmd, cmd.metadata, ports.uow)


HANDLERS = {CreateApiKey: create_api_key, RevokeApiKey: revoke_api_key}
"""Which handler answers each key command (the message bus routes by command type)."""
