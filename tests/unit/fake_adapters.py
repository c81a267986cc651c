"""In-memory fakes of the non-transactional ports (domain/<context>/ports.py), for service-layer tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.errors import InvalidInput
from domain.registry.decisions import VersionState
from domain.registry.ports import StoredArtifact
from events.registry import ArtifactMetadata


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The fixed current time."""
        return self.current

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.current += timedelta(seconds=seconds)


class FakeDatasetCatalog:
    """DatasetCatalog over a dict of dataset id -> (size, class names)."""

    def __init__(self, datasets: dict[str, tuple[int, list[str]]] | None = None) -> None:
        self.datasets = datasets or {"mnist_100": (100, [str(d) for d in range(10)])}

    async def size(self, dataset_id: str) -> int:
        """Images in a known selection; InvalidInput listing the known ones otherwise."""
        if dataset_id not in self.datasets:
            raise InvalidInput(
                f"unknown dataset {dataset_id!r} (known: {', '.join(self.datasets)})"
            )
        return self.datasets[dataset_id][0]

    async def class_names(self, dataset_id: str) -> list[str]:
        """Class names of a known selection, digits otherwise."""
        known = self.datasets.get(dataset_id)
        return list(known[1]) if known else [str(d) for d in range(10)]


class FakeShardQueue:
    """ShardQueue that records what it was asked to dispatch."""

    def __init__(self) -> None:
        self.dispatches: list[tuple[str, list[int], str]] = []

    async def dispatch(self, job_id: str, shards: list[int], correlation_id: str) -> None:
        """Record one dispatch call."""
        self.dispatches.append((job_id, list(shards), correlation_id))

    def shards(self, job_id: str) -> list[int]:
        """Every shard number dispatched for a job, in order, repeats included."""
        return [s for j, shards, _ in self.dispatches if j == job_id for s in shards]


class FakeShardEvaluator:
    """ShardEvaluator with fixed answers: label = index % 10, wrong on the ``wrong`` indices."""

    def __init__(self, wrong: set[int] | None = None, latency_ms: float = 2.0) -> None:
        self.wrong = wrong or set()
        self.latency_ms = latency_ms
        self.calls: list[tuple[str, str, str, int, int, int]] = []

    async def evaluate(
        self, version: VersionState, dataset_id: str, start: int, stop: int, batch_size: int
    ) -> tuple[list[int], list[int], list[float], list[int]]:
        """Predictions, labels, batch latencies and sizes of [start, stop)."""
        self.calls.append(
            (version.model_name, version.model_version, dataset_id, start, stop, batch_size)
        )
        labels = [i % 10 for i in range(start, stop)]
        preds = [(i % 10 + 1) % 10 if i in self.wrong else i % 10 for i in range(start, stop)]
        sizes = [min(batch_size, stop - b) for b in range(start, stop, batch_size)]
        return preds, labels, [self.latency_ms] * len(sizes), sizes


class FakeArtifactStore:
    """ArtifactStore over in-memory files: ``sources`` may be imported, ``files`` are stored."""

    def __init__(self, sources: dict[str, bytes] | None = None) -> None:
        self.sources: dict[str, bytes] = dict(sources or {})
        self.files: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[tuple[str, str], ArtifactMetadata] = {}
        self.puts: list[tuple[str, str]] = []
        self.discarded: list[tuple[str, str]] = []
        self.fail_metadata: Exception | None = None

    def resolve_source(self, source: str) -> Path:
        """The source as a path; InvalidInput when it is not an importable file."""
        if source not in self.sources:
            raise InvalidInput(f"artifact {source!r} is not a file under an allowed root")
        return Path(source)

    def digest(self, path: Path) -> tuple[str, int]:
        """sha256 and size of a source."""
        data = self.sources[str(path)]
        return hashlib.sha256(data).hexdigest(), len(data)

    def put(self, source: Path, model_name: str, model_version: str, sha256: str) -> StoredArtifact:
        """Copy a source into the store."""
        data = self.sources[str(source)]
        self.files[(model_name, model_version)] = data
        self.puts.append((model_name, model_version))
        uri = f"mem://{model_name}/{model_version}/model.pt"
        return StoredArtifact(uri=uri, sha256=sha256, size_bytes=len(data))

    def write_metadata(self, model_name: str, model_version: str, meta: ArtifactMetadata) -> None:
        """Keep the metadata (or fail as told)."""
        if self.fail_metadata is not None:
            raise self.fail_metadata
        self.metadata[(model_name, model_version)] = meta

    def discard(self, model_name: str, model_version: str) -> None:
        """Remove a version's files."""
        self.files.pop((model_name, model_version), None)
        self.metadata.pop((model_name, model_version), None)
        self.discarded.append((model_name, model_version))


class FakeInspector:
    """ArtifactInspector: refuses the sources in ``bad``; else the override or fixed metadata."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.bad = bad or set()
        self.inspected: list[str] = []

    def inspect(self, path: Path, override: ArtifactMetadata | None) -> ArtifactMetadata:
        """Validate a source by name."""
        self.inspected.append(str(path))
        if str(path) in self.bad:
            raise InvalidInput(f"{path} is not a loadable model artifact")
        return override or ArtifactMetadata(architecture="mnist_cnn", num_classes=10)


class FakeRegistrationLock:
    """RegistrationLock with one asyncio lock per (model, version), recording acquisitions."""

    def __init__(self) -> None:
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.acquired: list[tuple[str, str]] = []
        self.held: set[tuple[str, str]] = set()

    @asynccontextmanager
    async def __call__(self, model_name: str, model_version: str) -> AsyncIterator[None]:
        """Hold the (model, version) lock for the block."""
        key = (model_name, model_version)
        async with self.locks.setdefault(key, asyncio.Lock()):
            self.acquired.append(key)
            self.held.add(key)
            try:
                yield
            finally:
                self.held.discard(key)
