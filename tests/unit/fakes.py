"""In-memory fakes of the event-store ports (domain/ports.py), for the service-layer tests only.

The stores fold the real aggregate events (domain/registry.py, domain/jobs.py), refuse an append
at a stale stream version with ConcurrencyConflict, and keep everything a unit of work wrote
pending until its block ends without an error, as the PostgreSQL unit of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from domain.errors import ConcurrencyConflict
from domain.gates.aggregate import EVALUATING, GateState
from domain.gates.aggregate import evolve as evolve_gate
from domain.gates.aggregate import fold as fold_gate
from domain.jobs.aggregate import RUNNING, JobState, evolve_job, fold_job
from domain.ports import ShardResult
from domain.registry.decisions import ModelState, evolve, fold
from domain.registry.gate_policy import GateOutcome
from events.base import Event, EventMetadata, RecordedEvent
from events.streams import (
    GATE_STREAM_PREFIX,
    JOB_STREAM_PREFIX,
    gate_stream_id,
    job_stream_id,
    model_stream_id,
)
from tests.unit.fake_adapters import (
    FakeArtifactStore,
    FakeClock,
    FakeDatasetCatalog,
    FakeInspector,
    FakeRegistrationLock,
    FakeShardEvaluator,
    FakeShardQueue,
)

# The other ports' fakes are re-exported so tests import every fake from here.
__all__ = [
    "FakeArtifactStore",
    "FakeClock",
    "FakeDatabase",
    "FakeDatasetCatalog",
    "FakeInspector",
    "FakeRegistrationLock",
    "FakeShardEvaluator",
    "FakeShardQueue",
    "FakeUnitOfWork",
    "FakeUnitOfWorkFactory",
]


@dataclass
class FakeDatabase:
    """What has been committed: the event log, shard results and processed markers."""

    clock: FakeClock = field(default_factory=FakeClock)
    log: list[RecordedEvent] = field(default_factory=list)
    shard_results: dict[tuple[str, int], ShardResult] = field(default_factory=dict)
    processed: set[tuple[str, Any]] = field(default_factory=set)
    next_position: int = 1

    def stream(self, stream_id: str) -> list[RecordedEvent]:
        """Committed events of one stream, oldest first."""
        return [r for r in self.log if r.stream_id == stream_id]

    def events(self, stream_id: str | None = None) -> list[Event]:
        """Committed event payloads (of one stream, or all)."""
        return [r.event for r in self.log if stream_id is None or r.stream_id == stream_id]

    def append_now(self, stream_id: str, events: list[Event], actor: str = "someone-else") -> None:
        """Commit events directly, as a concurrent writer in another process would."""
        version = len(self.stream(stream_id))
        for offset, event in enumerate(events, start=1):
            self.log.append(
                self.record(stream_id, version + offset, event, EventMetadata(actor=actor))
            )

    def record(
        self, stream_id: str, version: int, event: Event, metadata: EventMetadata
    ) -> RecordedEvent:
        """Envelope an event at the next global position."""
        recorded = RecordedEvent(
            position=self.next_position,
            stream_id=stream_id,
            stream_version=version,
            event_id=uuid.uuid4(),
            recorded_at=self.clock.now(),
            metadata=metadata,
            event=event,
        )
        self.next_position += 1
        return recorded


class _Streams:
    """The append/load half shared by the model and job stores of one unit of work."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def _history(self, stream_id: str) -> list[RecordedEvent]:
        pending = [r for r in self.uow.pending if r.stream_id == stream_id]
        return self.uow.db.stream(stream_id) + pending

    def _append(
        self, stream_id: str, expected: int, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        self.uow.before_append(stream_id)
        current = len(self._history(stream_id))
        if current != expected:
            raise ConcurrencyConflict(f"stream {stream_id} is at {current}, expected {expected}")
        recorded = [
            self.uow.db.record(stream_id, expected + i, e, metadata)
            for i, e in enumerate(events, start=1)
        ]
        self.uow.pending.extend(recorded)
        return recorded


class FakeModelStore(_Streams):
    """ModelStore over the fake log."""

    async def load(self, model_name: str) -> ModelState:
        """Fold the model's stream."""
        return fold(model_name, self._history(model_stream_id(model_name)))

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at the state's version and evolve the state in place."""
        if not events:
            return []
        stream_id = model_stream_id(state.model_name)
        recorded = self._append(stream_id, state.stream_version, events, metadata)
        for r in recorded:
            evolve(state, r)
        return recorded


class FakeJobStore(_Streams):
    """JobStore over the fake log and shard-result table."""

    async def load(self, job_id: str) -> JobState:
        """Fold the job's stream."""
        return fold_job(job_id, self._history(job_stream_id(job_id)))

    async def save(
        self, state: JobState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at the state's version and evolve the state in place."""
        if not events:
            return []
        recorded = self._append(job_stream_id(state.job_id), state.stream_version, events, metadata)
        for r in recorded:
            evolve_job(state, r)
        return recorded

    async def store_shard_result(self, result: ShardResult) -> bool:
        """Keep a shard once; False for a repeat."""
        key = (result.job_id, result.shard)
        if key in self.uow.db.shard_results or key in self.uow.pending_results:
            return False
        self.uow.pending_results[key] = result
        return True

    async def stored_shards(self, job_id: str) -> set[int]:
        """Shard numbers stored (committed or in this unit of work)."""
        keys = set(self.uow.db.shard_results) | set(self.uow.pending_results)
        return {shard for j, shard in keys if j == job_id}

    async def shard_results(self, job_id: str) -> list[ShardResult]:
        """Stored shards of a job, in shard order."""
        rows = {**self.uow.db.shard_results, **self.uow.pending_results}
        return [rows[k] for k in sorted(rows) if k[0] == job_id]

    async def running(self) -> list[str]:
        """Jobs whose folded status is running."""
        ids = {r.stream_id.removeprefix(JOB_STREAM_PREFIX) for r in self.uow.db.log}
        states = [await self.load(job_id) for job_id in sorted(ids)]
        return [s.job_id for s in states if s.status == RUNNING]

    async def progress(self, job_id: str) -> tuple[str, int, int]:
        """(status, planned shards, stored shards); the real store reads its projection row."""
        state = fold_job(job_id, self._history(job_stream_id(job_id)))
        return state.status, state.shards, len(await self.stored_shards(job_id))

    async def active_count(self, submitted_by: str) -> int:
        """Queued or running jobs of one actor."""
        ids = {r.stream_id.removeprefix(JOB_STREAM_PREFIX) for r in self.uow.db.log}
        states = [await self.load(job_id) for job_id in sorted(ids)]
        return sum(
            s.status in ("queued", "running") and s.submitted_by == submitted_by for s in states
        )


class FakeGateStore(_Streams):
    """GateStore over the fake log; the projection lookups fold every gate stream."""

    async def load(self, gate_id: str) -> GateState:
        """Fold the gate's stream."""
        return fold_gate(gate_id, self._history(gate_stream_id(gate_id)))

    async def save(
        self, state: GateState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at the state's version and evolve the state in place."""
        if not events:
            return []
        stream_id = gate_stream_id(state.gate_id)
        recorded = self._append(stream_id, state.stream_version, events, metadata)
        for r in recorded:
            evolve_gate(state, r)
        return recorded

    async def all(self) -> list[GateState]:
        """Every gate, committed or written in this unit of work."""
        log = [*self.uow.db.log, *self.uow.pending]
        ids = dict.fromkeys(
            r.stream_id.removeprefix(GATE_STREAM_PREFIX)
            for r in log
            if r.stream_id.startswith(GATE_STREAM_PREFIX)
        )
        return [await self.load(gate_id) for gate_id in ids]

    async def outcomes(self, model_name: str, candidate_version: str) -> list[GateOutcome]:
        """Finished gates of one candidate."""
        states = await self.all()
        found = [
            s.outcome()
            for s in states
            if (s.model_name, s.candidate_version)
            == (
                model_name,
                candidate_version,
            )
        ]
        return [o for o in found if o is not None]

    async def waiting_on(self, job_id: str) -> list[str]:
        """Evaluating gates that compare ``job_id``."""
        return [
            s.gate_id
            for s in await self.all()
            if s.status == EVALUATING and job_id in (s.candidate_job_id, s.baseline_job_id)
        ]

    async def submitted_by(self, job_id: str) -> str | None:
        """The gate that submitted ``job_id``."""
        return next((s.gate_id for s in await self.all() if job_id in s.submitted), None)


class FakeUnitOfWork:
    """UnitOfWork: commits its pending writes when the block ends cleanly, else drops them."""

    def __init__(self, db: FakeDatabase, factory: FakeUnitOfWorkFactory) -> None:
        self.db, self.factory = db, factory
        self.pending: list[RecordedEvent] = []
        self.pending_results: dict[tuple[str, int], ShardResult] = {}
        self.pending_processed: set[tuple[str, Any]] = set()
        self.committed = self.rolled_back = False
        self.models = FakeModelStore(self)
        self.jobs = FakeJobStore(self)
        self.gates = FakeGateStore(self)

    def before_append(self, stream_id: str) -> None:
        """Give the test's interference hook a chance to commit a concurrent write first."""
        if self.factory.interfere is not None:
            self.factory.interfere(self.db, stream_id)

    async def mark_processed(self, group: str, event_id: Any) -> bool:
        """First call per (group, event id) wins."""
        key = (group, event_id)
        if key in self.db.processed or key in self.pending_processed:
            return False
        self.pending_processed.add(key)
        return True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wrote = self.pending or self.pending_results or self.pending_processed
        if exc is None and wrote and self.factory.commit_failures:
            self.factory.commit_failures.pop(0)
            self.rolled_back = True
            raise self.factory.commit_error
        if exc is not None:
            self.rolled_back = True
            return
        self.db.log.extend(self.pending)
        self.db.shard_results.update(self.pending_results)
        self.db.processed |= self.pending_processed
        self.committed = True


class FakeUnitOfWorkFactory:
    """UnitOfWorkFactory: a fresh unit of work per call over one shared fake database.

    ``interfere(db, stream_id)`` runs before every append (to simulate a concurrent writer);
    ``fail_next_commits(n, error)`` makes the next n clean commits that wrote raise instead.
    """

    def __init__(self, db: FakeDatabase | None = None) -> None:
        self.db = db or FakeDatabase()
        self.created: list[FakeUnitOfWork] = []
        self.interfere: Callable[[FakeDatabase, str], None] | None = None
        self.commit_failures: list[int] = []
        self.commit_error: BaseException = RuntimeError("commit failed")

    def __call__(self) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.db, self)
        self.created.append(uow)
        return uow

    def fail_next_commits(self, n: int, error: BaseException) -> None:
        """Make the next ``n`` clean commits of units of work that wrote raise ``error``."""
        self.commit_failures = [1] * n
        self.commit_error = error

    @property
    def commits(self) -> int:
        """Units of work that committed."""
        return sum(u.committed for u in self.created)
