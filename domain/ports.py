"""Ports: the interfaces that storage and ml implement for the handlers."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import msgspec

from domain.registry import ModelState
from events.base import Event, EventMetadata, RecordedEvent
from events.registry import ArtifactMetadata


class StoredArtifact(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact copied into the store."""

    uri: str
    sha256: str
    size_bytes: int


class ModelRepository(Protocol):
    """Loads and saves registered models through the event log."""

    def registration_lock(
        self, model_name: str, model_version: str
    ) -> AbstractAsyncContextManager[None]:
        """Serialise registrations of one version across processes and hosts."""
        ...

    async def load(self, model_name: str) -> ModelState:
        """The model's state folded from its stream (empty state if unknown)."""
        ...

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append events at ``state.stream_version`` and update projections atomically."""
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
