"""The batch-job aggregate: submitted -> running (planned) -> succeeded | failed | cancelled."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import Conflict, InvalidInput, NotFound
from domain.jobs.commands import (
    DEFAULT_SHARD_SIZE,
    CancelBatchJob,
    CompleteBatchJob,
    CompleteShard,
    FailBatchJob,
    JobCommand,
    PlanBatchJob,
    RecordSubmission,
)
from events.base import Event, RecordedEvent
from events.jobs import (
    BatchJobCancelled,
    BatchJobCompleted,
    BatchJobFailed,
    BatchJobPlanned,
    BatchJobSubmitted,
    BatchShardCompleted,
)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
MIN_BATCH, MAX_BATCH = 1, 4096


@dataclass
class JobState:
    """A batch job as folded from its stream."""

    job_id: str
    stream_version: int = 0
    model_name: str = ""
    model_version: str = ""
    dataset_id: str = ""
    total: int = 0
    batch_size: int = 0
    shard_size: int = DEFAULT_SHARD_SIZE
    status: str = ""
    shards: int = 0
    done_shards: set[int] = field(default_factory=set)
    done_images: int = 0
    metrics: dict[str, Any] | None = None
    error: str | None = None
    submitted_by: str = ""
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    # Set by the submission for whoever submitted, never folded from the log: e.g. a dataset
    # other than the version's reference dataset (domain/registry/reference.py).
    warning: str | None = field(default=None, compare=False)

    @property
    def exists(self) -> bool:
        """True once submitted."""
        return bool(self.status)

    @property
    def planned_shards(self) -> int:
        """How many shards the job splits into."""
        return math.ceil(self.total / self.shard_size) if self.total else 0

    def shard_bounds(self, shard: int) -> tuple[int, int]:
        """[start, stop) image indices of a shard."""
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.total)


def evolve_job(state: JobState, recorded: RecordedEvent) -> JobState:
    """Apply one recorded event (in place)."""
    e, at = recorded.event, recorded.recorded_at
    state.stream_version = recorded.stream_version
    state.updated_at = at
    match e:
        case BatchJobSubmitted():
            state.model_name, state.model_version = e.model_name, e.model_version
            state.dataset_id, state.total = e.dataset_id, e.total
            state.batch_size, state.shard_size = e.batch_size, e.shard_size
            state.status, state.submitted_at = QUEUED, at
            state.submitted_by = recorded.metadata.actor
        case BatchJobPlanned():
            state.status, state.shards = RUNNING, e.shards
        case BatchShardCompleted():
            if e.shard not in state.done_shards:
                state.done_shards.add(e.shard)
                state.done_images += e.images
        case BatchJobCompleted():
            state.status, state.metrics, state.finished_at = SUCCEEDED, e.metrics, at
        case BatchJobFailed():
            state.status, state.error, state.finished_at = FAILED, e.reason, at
        case BatchJobCancelled():
            state.status, state.finished_at = CANCELLED, at
            state.error = f"cancelled: {e.reason}" if e.reason else "cancelled"
    return state


def fold_job(job_id: str, history: list[RecordedEvent]) -> JobState:
    """A job's state from its events."""
    state = JobState(job_id=job_id)
    for r in history:
        evolve_job(state, r)
    return state


def check_shard_limit(total: int, shard_size: int, max_shards: int | None, dataset_id: str) -> None:
    """Refuse a job that would split into more than ``max_shards`` shards, saying what fits."""
    if max_shards is None or isinstance(shard_size, bool) or not isinstance(shard_size, int):
        return
    if shard_size >= 1 and (shards := math.ceil(total / shard_size)) > max_shards:
        raise InvalidInput(
            f"{dataset_id} has {total} images, so shard_size {shard_size} makes {shards} shards; "
            f"the limit is {max_shards} (MAX_SHARDS_PER_JOB): use shard_size >= "
            f"{math.ceil(total / max_shards)}"
        )


def decide_job(state: JobState, cmd: JobCommand) -> list[Event]:
    """The events a command causes (empty when it is a harmless repeat)."""
    match cmd:
        case RecordSubmission():
            if state.exists:
                raise Conflict(f"job {cmd.job_id} already exists")
            if not MIN_BATCH <= cmd.batch_size <= MAX_BATCH:
                raise InvalidInput(
                    f"batch_size must be between {MIN_BATCH} and {MAX_BATCH}, got {cmd.batch_size}"
                )
            if not 1 <= cmd.shard_size <= 100_000:
                raise InvalidInput(f"shard_size must be between 1 and 100000, got {cmd.shard_size}")
            if cmd.total < 1:
                raise InvalidInput("the dataset selection is empty")
            return [BatchJobSubmitted(**msgspec.structs.asdict(cmd))]
        case PlanBatchJob():
            if state.status != QUEUED:
                return []
            return [BatchJobPlanned(job_id=state.job_id, shards=state.planned_shards)]
        case CompleteShard():
            # Shards are dispatched before the plan is recorded, so a fast shard may land first.
            if state.status not in (QUEUED, RUNNING) or cmd.shard in state.done_shards:
                return []
            if not 0 <= cmd.shard < state.planned_shards:
                raise InvalidInput(f"job {state.job_id} has no shard {cmd.shard}")
            return [
                BatchShardCompleted(
                    job_id=state.job_id, shard=cmd.shard, images=cmd.images, worker=cmd.worker
                )
            ]
        case CompleteBatchJob():
            if state.status != RUNNING or len(state.done_shards) != state.shards:
                return []
            return [
                BatchJobCompleted(
                    job_id=state.job_id, metrics=cmd.metrics, duration_s=cmd.duration_s
                )
            ]
        case FailBatchJob():
            if state.status in TERMINAL or not state.exists:
                return []
            return [BatchJobFailed(job_id=state.job_id, reason=cmd.reason, shard=cmd.shard)]
        case CancelBatchJob():
            if not state.exists:
                raise NotFound(f"unknown job {cmd.job_id!r}")
            if state.status == CANCELLED:
                return []
            if state.status in TERMINAL:
                raise Conflict(f"job {state.job_id} already {state.status}; it cannot be cancelled")
            return [BatchJobCancelled(job_id=state.job_id, reason=cmd.reason)]
    raise InvalidInput(f"unknown command {type(cmd).__name__}")


def job_row(state: JobState) -> dict[str, Any]:
    """The batch_jobs projection row."""
    return {
        "job_id": state.job_id,
        "model_name": state.model_name,
        "model_version": state.model_version,
        "dataset_id": state.dataset_id,
        "status": state.status,
        "total": state.total,
        "done_images": state.done_images,
        "shards": state.shards or state.planned_shards,
        "done_shards": len(state.done_shards),
        "batch_size": state.batch_size,
        "shard_size": state.shard_size,
        "metrics": state.metrics,
        "error": state.error,
        "submitted_by": state.submitted_by,
        "created_at": state.submitted_at,
        "updated_at": state.updated_at,
        "finished_at": state.finished_at,
    }
