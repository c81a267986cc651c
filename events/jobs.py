"""Events of batch jobs (area ``jobs``) and evaluations (area ``eval``)."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from events.base import Event


class BatchJobSubmitted(Event, frozen=True, kw_only=True):
    """A batch evaluation of one model version over a dataset was asked for."""

    area: ClassVar[str] = "jobs"
    job_id: str
    model_name: str
    model_version: str
    dataset_id: str
    total: int
    batch_size: int
    shard_size: int


class BatchJobPlanned(Event, frozen=True, kw_only=True):
    """The job was split into shards and they were dispatched to the workers."""

    area: ClassVar[str] = "jobs"
    job_id: str
    shards: int


class BatchShardCompleted(Event, frozen=True, kw_only=True):
    """One shard's predictions were stored (in batch_shard_results)."""

    area: ClassVar[str] = "jobs"
    job_id: str
    shard: int
    images: int
    worker: str


class BatchJobCompleted(Event, frozen=True, kw_only=True):
    """Every shard is done and the metrics were aggregated."""

    area: ClassVar[str] = "jobs"
    job_id: str
    metrics: dict[str, Any]
    duration_s: float


class BatchJobFailed(Event, frozen=True, kw_only=True):
    """The job cannot finish; ``reason`` says why."""

    area: ClassVar[str] = "jobs"
    job_id: str
    reason: str
    shard: int | None = None


class BatchJobCancelled(Event, frozen=True, kw_only=True):
    """A user cancelled the job; remaining shards are skipped."""

    area: ClassVar[str] = "jobs"
    job_id: str
    reason: str | None = None


class EvaluationRecorded(Event, frozen=True, kw_only=True):
    """Metrics of a model version on a dataset, from a completed batch job."""

    area: ClassVar[str] = "eval"
    model_name: str
    model_version: str
    job_id: str
    dataset_id: str
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


JobEvent = (
    BatchJobSubmitted
    | BatchJobPlanned
    | BatchShardCompleted
    | BatchJobCompleted
    | BatchJobFailed
    | BatchJobCancelled
)
