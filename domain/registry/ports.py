"""Ports of the registry: artifact files, the registration lock, the read side, and the
dataclass of ports its handlers take."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from domain.ports import Clock, UnitOfWorkFactory
from domain.registry.views import HistoryEntry, ModelSummary, ModelVersionView
from events.registry import ArtifactMetadata


class StoredArtifact(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact copied into the store."""

    uri: str
    sha256: str
    size_bytes: int


class RegistrationLock(Protocol):
    """Serialises registrations of one version across processes and hosts."""

    def __call__(self, model_name: str, model_version: str) -> AbstractAsyncContextManager[None]:
        """Hold the lock for (model, version) while the block runs."""
        ...


class ArtifactStore(Protocol):
    """Holds artifact files at <root>/<model>/<version>/model.pt."""

    def resolve_source(self, source: str) -> Path:
        """The checked absolute path of a file to import; InvalidInput if not allowed."""
        ...

    def digest(self, path: Path) -> tuple[str, int]:
        """sha256 hex and size of a file."""
        ...

    def put(self, source: Path, model_name: str, model_version: str, sha256: str) -> StoredArtifact:
        """Copy a file into the store atomically."""
        ...

    def write_metadata(self, model_name: str, model_version: str, meta: ArtifactMetadata) -> None:
        """Store metadata.json beside model.pt."""
        ...

    def discard(self, model_name: str, model_version: str) -> None:
        """Remove the files of a version whose registration did not commit."""
        ...


class ArtifactInspector(Protocol):
    """Checks that a file is a loadable model artifact."""

    def inspect(self, path: Path, override: ArtifactMetadata | None) -> ArtifactMetadata:
        """Validate the file (and its metadata: sidecar, or ``override``); return the metadata."""
        ...


class RegistryReader(Protocol):
    """Read side of the registry: projection lookups for entrypoints."""

    async def list_models(self, model_name: str | None = None) -> list[ModelSummary]:
        """Every version of every model (or of one)."""
        ...

    async def list_versions(self, model_name: str) -> list[ModelVersionView]:
        """One model's versions; NotFound if unknown."""
        ...

    async def get_version(self, model_name: str, model_version: str) -> ModelVersionView:
        """One version; NotFound if unknown."""
        ...

    async def require_prod(self, model_name: str) -> str | None:
        """The prod version; NotFound for an unknown model, Conflict when none is prod."""
        ...

    async def prod_models(self, limit: int) -> list[str]:
        """Names of models that have a prod version."""
        ...

    async def history(self, model_name: str) -> list[HistoryEntry]:
        """The model's events, oldest first."""
        ...

    async def ping(self) -> None:
        """Raise ServiceUnavailable when the database does not answer."""
        ...


@dataclass(frozen=True, kw_only=True)
class RegistryPorts:
    """What the registry handlers use, bound once by the composition root."""

    uow: UnitOfWorkFactory
    artifacts: ArtifactStore
    inspector: ArtifactInspector
    lock: RegistrationLock
    clock: Clock
