"""In-memory fakes of the event-store ports (the stores of the unit of work), for the service-layer
tests only.

The stores are the generic repository's fake: the same stream ids, fold and projection rows
(storage/<context>/projection.py) over an in-memory log. They refuse an append at a stale
stream version with ConcurrencyConflict, answer their queries from the projection rows of
every state (their own unit of work's writes included, as in PostgreSQL's transaction), and
keep everything a unit of work wrote pending until its block ends without an error.
tests/integration/test_store_contract.py runs the same cases on these and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from domain.errors import ConcurrencyConflict
from domain.gates.state import EVALUATING, TERMINAL, GateState
from domain.gates.views import outcome_of
from domain.jobs.aggregate import QUEUED, RUNNING, JobState
from domain.jobs.store import ShardResult
from domain.keys.aggregate import ApiKeyState
from domain.registry.gate_policy import GateOutcome
from domain.registry.state import ModelState
from events.base import Event, EventMetadata, RecordedEvent
from storage.gates.projection import GATES
from storage.jobs.projection import JOBS
from storage.keys.projection import KEYS
from storage.registry.projection import MODELS
from storage.repository import Projection
from storage.tables import api_keys, batch_jobs, gates
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
    "FakeJobStore",
    "FakeRegistrationLock",
    "FakeRepository",
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


S = TypeVar("S")


class UniqueViolation(Exception):
    """A projection row repeats a unique column's value (PostgreSQL's IntegrityError)."""


class _Streams:
    """The append/load half shared by the stores of one unit of work."""

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


class FakeRepository(_Streams, Generic[S]):
    """The generic repository (storage/repository.py) over the fake log: load, save, rows."""

    projection: Projection[Any]

    async def load(self, aggregate_id: str) -> S:
        """The aggregate's state folded from its stream (committed and pending events)."""
        return self._fold(aggregate_id)

    async def save(
        self, state: S, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at the state's version and evolve the state in place."""
        if not events:
            return []
        p = self.projection
        stream_id = p.stream_id(p.identity(state))
        recorded = self._append(stream_id, state.stream_version, events, metadata)  # type: ignore[attr-defined]
        for r in recorded:
            p.evolve(state, r)
        self._check_unique(state)
        return recorded

    def _check_unique(self, state: S) -> None:
        """Refuse a row that repeats another aggregate's value of a unique column, as PostgreSQL
        does (api_keys.key_hash): the unit of work then rolls back."""
        p = self.projection
        mine = p.identity(state)
        for table, rows in p.rows(state).items():
            unique = [c.name for c in table.columns if c.unique]
            if not unique:
                continue
            others = [r for r in self.rows(table) if r[p.key] != mine]
            for row, column in ((r, c) for r in rows for c in unique):
                if any(o[column] == row[column] for o in others):
                    raise UniqueViolation(
                        f"duplicate key value violates unique constraint on {table.name}.{column}"
                    )

    def _fold(self, aggregate_id: str) -> S:
        p = self.projection
        return p.fold(aggregate_id, self._history(p.stream_id(aggregate_id)))

    def rows(self, table: Any) -> list[dict[str, Any]]:
        """The rows of one projection table, as the projection would hold them now."""
        p, log = self.projection, [*self.uow.db.log, *self.uow.pending]
        ids = dict.fromkeys(
            r.stream_id.removeprefix(p.prefix) for r in log if r.stream_id.startswith(p.prefix)
        )
        return [row for i in ids for row in p.rows(self._fold(i)).get(table, [])]


class FakeModelStore(FakeRepository[ModelState]):
    """ModelStore over the fake log."""

    projection = MODELS


class FakeKeyStore(FakeRepository[ApiKeyState]):
    """KeyStore over the fake log."""

    projection = KEYS

    async def active_admins(self) -> list[str]:
        """Names of the active admin keys, as the api_keys rows hold them now."""
        rows = self.rows(api_keys)
        return sorted(r["key_name"] for r in rows if r["role"] == "admin" and r["active"])


class FakeJobStore(FakeRepository[JobState]):
    """JobStore over the fake log and shard-result table; its queries read the batch_jobs rows."""

    projection = JOBS

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
        """Jobs whose row says running."""
        return [r["job_id"] for r in self.rows(batch_jobs) if r["status"] == RUNNING]

    async def progress(self, job_id: str) -> tuple[str, int, int]:
        """(status, planned shards, stored shards) from the job's row, ("", 0, 0) without one."""
        row = next((r for r in self.rows(batch_jobs) if r["job_id"] == job_id), None)
        if row is None:
            return "", 0, 0
        return row["status"], int(row["shards"]), len(await self.stored_shards(job_id))

    async def active_count(self, submitted_by: str) -> int:
        """Queued or running jobs of one actor."""
        rows = self.rows(batch_jobs)
        return sum(
            r["status"] in (QUEUED, RUNNING) and r["submitted_by"] == submitted_by for r in rows
        )


def _newest_first(at: datetime | None) -> tuple[bool, datetime]:
    """A sort key for ``ORDER BY at DESC`` with reverse=True (PostgreSQL puts NULLs first)."""
    return at is None, at or datetime.min


class FakeGateStore(FakeRepository[GateState]):
    """GateStore over the fake log; its lookups read the gates rows, as the real one does."""

    projection = GATES

    async def outcomes(self, model_name: str, candidate_version: str) -> list[GateOutcome]:
        """Finished gates of one candidate, newest decision first."""
        rows = [
            r
            for r in self.rows(gates)
            if (r["model_name"], r["candidate_version"]) == (model_name, candidate_version)
            and r["status"] in TERMINAL
        ]
        rows.sort(key=lambda r: _newest_first(r["decided_at"]), reverse=True)
        return [outcome_of(r) for r in rows]

    async def waiting_on(self, job_id: str) -> list[str]:
        """Evaluating gates that compare ``job_id``, oldest request first."""
        rows = [
            r
            for r in self.rows(gates)
            if r["status"] == EVALUATING and job_id in (r["candidate_job_id"], r["baseline_job_id"])
        ]
        rows.sort(key=lambda r: (r["requested_at"] is None, r["requested_at"] or datetime.min))
        return [r["gate_id"] for r in rows]

    async def submitted_by(self, job_id: str) -> str | None:
        """The gate that submitted ``job_id``."""
        return next(
            (
                r["gate_id"]
                for r in self.rows(gates)
                if job_id in (r["candidate_job_id"], r["baseline_job_id"])
                and job_id in r["submitted"]
            ),
            None,
        )


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
        self.keys = FakeKeyStore(self)

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
