"""Request and response bodies of the registry endpoints."""

from __future__ import annotations

from typing import Annotated

import msgspec

from domain.names import MAX_REASON
from events.registry import ArtifactMetadata

# Every free-text reason: its bounds are in the schema, so clients (and fuzzers) can see them.
# No NUL character: PostgreSQL cannot store one (domain.names.check_text says the same).
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON, pattern=r"^[^\x00]*$")]


class Health(msgspec.Struct, frozen=True):
    """GET /health."""

    status: str
    version: str


class RegisterVersionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Register a version from an artifact file on the server's disk."""

    model_version: str
    artifact_path: str
    tags: dict[str, str] = {}
    reason: Reason | None = None
    metadata: ArtifactMetadata | None = None


class ReasonRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An optional reason recorded on the event."""

    reason: Reason | None = None


class RegisterVersionResponse(msgspec.Struct, frozen=True):
    """The registered version; ``created`` is false for an idempotent repeat."""

    model_name: str
    model_version: str
    status: str
    sha256: str
    artifact_uri: str
    created: bool


class PromoteResponse(msgspec.Struct, frozen=True):
    """The new prod version and the one it replaced."""

    model_name: str
    model_version: str
    status: str
    previous_prod: str | None
    changed: bool


class RollbackResponse(msgspec.Struct, frozen=True):
    """Which version prod went back from, and to."""

    model_name: str
    from_version: str
    to_version: str
