"""The API-key aggregate: roles, decisions on create and revoke, and the state as a fold."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import msgspec

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound
from domain.keys.commands import IssueApiKey, KeyCommand, RevokeApiKey
from events.base import Event, RecordedEvent
from events.keys import ROLES, ApiKeyCreated, ApiKeyRevoked

_KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# The names the platform itself records as actors; a key may not impersonate them.
RESERVED_NAMES = frozenset({"anonymous", "system"})


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name (it becomes the actor of events), else raise."""
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"invalid key name {name!r}: use 1-64 chars of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(f"key name {name!r} is reserved")
    return name


def check_role(role: str) -> str:
    """Return ``role`` if it is one of ROLES, else raise InvalidInput listing them."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def role_allows(have: str, need: str) -> bool:
    """Whether a key with role ``have`` may call an endpoint that needs role ``need``."""
    return ROLES.index(have) >= ROLES.index(need)


def hash_key(secret: str) -> str:
    """The stored form of a key: hex SHA-256.

    A plain fast hash is enough here, unlike for passwords: keys are 256-bit random strings
    (domain.keys.handlers), so there is no dictionary to try and a brute force of the hash is
    as hopeless as one of the key. No salt is needed for the same reason, and an unsalted hash
    lets a request find its key by one indexed lookup.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyState(msgspec.Struct, kw_only=True):
    """A key name's state, folded from its stream."""

    key_name: str
    role: str | None = None
    key_hash: str | None = None
    active: bool = False
    created_at: datetime | None = None
    created_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    updated_at: datetime | None = None
    stream_version: int = 0


def decide_key(state: ApiKeyState, command: KeyCommand) -> list[Event]:
    """The events a command causes (empty for a repeated revoke); raises on a broken rule."""
    check_key_name(command.key_name)
    reason = names.check_reason(command.reason)
    match command:
        case IssueApiKey():
            check_role(command.role)
            if not re.fullmatch(r"[0-9a-f]{64}", command.key_hash):
                raise InvalidInput("key_hash must be 64 lowercase hex characters (SHA-256)")
            if state.active:
                raise Conflict(
                    f"key {command.key_name!r} already exists; revoke it first to issue a new one"
                )
            return [
                ApiKeyCreated(
                    key_name=command.key_name,
                    role=command.role,
                    key_hash=command.key_hash,
                    reason=reason,
                )
            ]
        case RevokeApiKey():
            if command.force and not reason:
                raise InvalidInput("--force needs a --reason: say why the last admin key goes")
            if state.stream_version == 0:
                raise NotFound(f"unknown key {command.key_name!r}")
            if not state.active:
                return []  # revoking twice is a no-op, not an error
            return [ApiKeyRevoked(key_name=command.key_name, reason=reason)]
    raise InvalidInput(f"unknown command {type(command).__name__}")


def check_not_last_admin(state: ApiKeyState, active_admins: list[str], force: bool) -> None:
    """Refuse (Conflict) to revoke the last active admin key unless forced.

    With no admin key left nobody can issue or revoke keys over HTTP, and with no key at all the
    API is open to anonymous use from this machine again.
    """
    if force or not (state.active and state.role == "admin"):
        return
    if any(name != state.key_name for name in active_admins):
        return
    raise Conflict(
        f"key {state.key_name!r} is the last active admin key: without it nobody can manage "
        "keys over HTTP, and with no key at all the API serves anonymous requests from this "
        "machine again; create another admin key first, or revoke with --force and a --reason"
    )


def evolve_key(state: ApiKeyState, recorded: RecordedEvent) -> ApiKeyState:
    """Apply one recorded event to the state (in place) and return it."""
    event = recorded.event
    if isinstance(event, ApiKeyCreated):
        state.role, state.key_hash, state.active = event.role, event.key_hash, True
        state.created_at, state.created_by = recorded.recorded_at, recorded.metadata.actor
        state.revoked_at = state.revoked_by = None
    elif isinstance(event, ApiKeyRevoked):
        state.active = False
        state.revoked_at, state.revoked_by = recorded.recorded_at, recorded.metadata.actor
    state.updated_at = recorded.recorded_at
    state.stream_version = recorded.stream_version
    return state


def fold_key(key_name: str, history: list[RecordedEvent]) -> ApiKeyState:
    """The state of a key name from its stream, oldest event first."""
    state = ApiKeyState(key_name=key_name)
    for recorded in history:
        evolve_key(state, recorded)
    return state


def key_row(state: ApiKeyState) -> dict[str, object]:
    """The api_keys projection row of a key name."""
    return {
        "key_name": state.key_name,
        "role": state.role,
        "key_hash": state.key_hash,
        "active": state.active,
        "created_at": state.created_at,
        "created_by": state.created_by,
        "revoked_at": state.revoked_at,
        "revoked_by": state.revoked_by,
        "updated_at": state.updated_at,
    }


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A key as the API and the CLI show it: never the key, never its hash."""

    key_name: str
    role: str
    active: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None


def key_view(state: ApiKeyState) -> KeyView:
    """The API shape of a key name's state (no key, no hash)."""
    return KeyView(
        key_name=state.key_name,
        role=state.role or "",
        active=state.active,
        created_at=state.created_at,  # type: ignore[arg-type]
        created_by=state.created_by or "",
        revoked_at=state.revoked_at,
        revoked_by=state.revoked_by,
    )


class KeyIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a presented key belongs to: what the access guard needs."""

    key_name: str
    role: str
