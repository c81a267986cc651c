"""Ports: the narrow interfaces that storage/ and ml/ implement for the use-case handlers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import msgspec

from domain.gates.ports import GateStore
from domain.jobs.aggregate import JobState
from domain.keys.ports import KeyStore
from domain.registry.decisions import ModelState, VersionState
from domain.registry.views import HistoryEntry, JobView, ModelSummary, ModelVersionView
from events.base import Event, EventMetadata, RecordedEvent
from events.registry import ArtifactMetadata


class StoredArtifact(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact copied into the store."""

    uri: str
    sha256: str
    size_bytes: int


class ShardResult(msgspec.Struct, kw_only=True):
    """One evaluated shard: per-image predictions and labels, per-batch latencies."""

    job_id: str
    shard: int
    start: int
    stop: int
    predictions: list[int]
    labels: list[int]
    batch_latencies_ms: list[float]
    batch_sizes: list[int]
    worker: str


class ModelStore(Protocol):
    """Registered models, loaded from and saved to their event-log streams."""

    async def load(self, model_name: str) -> ModelState:
        """The model's state folded from its stream (empty state if unknown)."""
        ...

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` (ConcurrencyConflict if stale) and project."""
        ...


class JobStore(Protocol):
    """Batch jobs and their shard results."""

    async def load(self, job_id: str) -> JobState:
        """The job's state folded from its stream."""
        ...

    async def save(
        self, state: JobState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` and project."""
        ...

    async def store_shard_result(self, result: ShardResult) -> bool:
        """Keep a shard's results; False when that shard was already stored."""
        ...

    async def stored_shards(self, job_id: str) -> set[int]:
        """Shard numbers with stored results."""
        ...

    async def shard_results(self, job_id: str) -> list[ShardResult]:
        """Every stored shard of a job, in shard order."""
        ...

    async def running(self) -> list[str]:
        """Ids of jobs that are planned but not finished."""
        ...

    async def progress(self, job_id: str) -> tuple[str, int, int]:
        """(status, planned shards, stored shards) counted in SQL, without folding the stream."""
        ...

    async def active_count(self, submitted_by: str) -> int:
        """Jobs queued or running that ``submitted_by`` submitted."""
        ...


class UnitOfWork(Protocol):
    """One atomic transaction over the event log, its projections and consumer bookkeeping.

    Leaving the block without an error commits; an error rolls everything back.
    """

    models: ModelStore
    jobs: JobStore
    keys: KeyStore
    gates: GateStore

    async def mark_processed(self, group: str, event_id: Any) -> bool:
        """Record that ``group`` handled ``event_id``; False for a duplicate delivery."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


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


class DatasetCatalog(Protocol):
    """Knows which dataset ids exist here, how many images they hold and their classes."""

    async def size(self, dataset_id: str) -> int:
        """Images in the selection; InvalidInput (listing what exists) if unknown."""
        ...

    async def class_names(self, dataset_id: str) -> list[str]:
        """The class names of a dataset id (digits when unknown)."""
        ...


class ShardQueue(Protocol):
    """Work messages for the batch-inference group."""

    async def dispatch(self, job_id: str, shards: list[int], correlation_id: str) -> None:
        """Queue one work message per shard."""
        ...


class ShardEvaluator(Protocol):
    """Runs a model version over a slice of a dataset."""

    async def evaluate(
        self, version: VersionState, dataset_id: str, start: int, stop: int, batch_size: int
    ) -> tuple[list[int], list[int], list[float], list[int]]:
        """Predictions, labels, per-batch latencies (ms) and batch sizes of [start, stop)."""
        ...


class Clock(Protocol):
    """The time, injectable so handlers are testable."""

    def now(self) -> datetime:
        """The current UTC time."""
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


class JobReader(Protocol):
    """Read side of batch jobs."""

    async def get(self, job_id: str) -> JobView:
        """One job; NotFound if unknown."""
        ...

    async def list(
        self, model_name: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[JobView]:
        """Newest jobs first, optionally filtered."""
        ...
