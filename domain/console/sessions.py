"""Console sessions: what the server keeps of a login, the port that keeps it, and the tokens.

The browser holds only a random session id. The server keeps the session by the id's SHA-256
(a copy of the table gives no usable cookie): the key's name, role and SHA-256, a CSRF secret,
and when it began and was last used. It ends after ``idle_s`` without a request, ``max_s``
after the login, at logout, and as soon as its key is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 256 random bits


@dataclass(frozen=True, kw_only=True)
class ConsoleSession:
    """A live session as the server keeps it (never the key itself)."""

    key_name: str
    role: str
    csrf_secret: str
    created_at: datetime
    last_seen_at: datetime
    key_hash: str  # the SHA-256 of the session's key (a key of API_KEYS has no api_keys row)


@dataclass(frozen=True, kw_only=True)
class SessionLimits:
    """When the server ends a session: idle for ``idle_s``, or ``max_s`` after the login."""

    idle_s: float
    max_s: float


@dataclass(frozen=True, kw_only=True)
class NewSession:
    """What a login keeps: whose key (its name, role and SHA-256) and the CSRF secret."""

    key_hash: str
    key_name: str
    role: str
    csrf_secret: str


class SessionStore(Protocol):
    """Where every API process finds the same sessions."""

    async def open(self, session_hash: str, session: NewSession, limits: SessionLimits) -> None:
        """Keep a new session (and drop every session that has expired)."""
        ...

    async def touch(
        self, session_hash: str, limits: SessionLimits, bootstrap_keys: Collection[str]
    ) -> ConsoleSession | None:
        """The session, its last use now, if it has not expired and its key is still active
        (stored and not revoked, or among ``bootstrap_keys``' hashes); else None, and it is gone."""
        ...

    async def close(self, session_hash: str) -> None:
        """End a session (logout)."""
        ...


def new_session_id() -> str:
    """A session id for the cookie: 256 random bits."""
    return secrets.token_urlsafe(32)


def new_csrf_secret() -> str:
    """The per-session secret that the session's CSRF tokens are derived from."""
    return secrets.token_hex(32)


def session_hash(session_id: str) -> str | None:
    """How the server finds a session: the SHA-256 of a well-formed id, None for anything else."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(csrf_secret: str, session_hash: str) -> str:
    """A session's CSRF token: HMAC-SHA-256 of its id's hash under its own server-side secret."""
    message = f"console-csrf:{session_hash}".encode()
    return hmac.new(csrf_secret.encode(), message, hashlib.sha256).hexdigest()
