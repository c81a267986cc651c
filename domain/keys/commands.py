"""Commands of API keys, in the imperative.

``CreateApiKey`` and ``RevokeApiKey`` are what entrypoints send; ``IssueApiKey`` is what the
create handler decides on once the secret is drawn (only its hash is ever kept).
"""

from __future__ import annotations

import msgspec

from events.base import EventMetadata


class CreateApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """Issue a new key to a name with a role (the key is returned once)."""

    key_name: str
    role: str
    reason: str | None = None
    metadata: EventMetadata


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """Stop a name's key from working; ``force`` (with a reason) even the last admin key."""

    key_name: str
    reason: str | None = None
    metadata: EventMetadata
    force: bool = False


class IssueApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """Issue a key (by its hash) to a name with a role."""

    key_name: str
    role: str
    key_hash: str
    reason: str | None = None


KeyCommand = IssueApiKey | RevokeApiKey
