"""Commands of batch jobs, in the imperative.

Those carrying ``metadata`` are what entrypoints and consumer groups send to the handlers;
``RecordSubmission``, ``CompleteShard`` and ``CompleteBatchJob`` are what the handlers decide on
once the dataset is sized, a shard evaluated or the metrics computed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from domain.delivery import Delivery
from events.base import EventMetadata

DEFAULT_SHARD_SIZE = 1000


class SubmitBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Evaluate a model version (prod unless one is named) over a dataset.

    ``shard_size`` defaults to the platform's; a gate names its own ``job_id`` so a retry cannot
    submit twice, and ``limited=False`` (the platform's own evaluations) skips the per-key quota.
    """

    model_name: str
    dataset_id: str
    batch_size: int = 64
    model_version: str | None = None
    shard_size: int | None = None
    job_id: str | None = None
    limited: bool = True
    metadata: EventMetadata


class CancelBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Stop the job."""

    job_id: str
    reason: str | None = None
    metadata: EventMetadata


class PlanBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Dispatch a submitted job's shards and record the plan (once per delivery)."""

    job_id: str
    delivery: Delivery
    metadata: EventMetadata


class EvaluateShard(msgspec.Struct, frozen=True, kw_only=True):
    """Run one shard of a job through its model on ``worker``."""

    job_id: str
    shard: int
    worker: str
    metadata: EventMetadata


class AggregateBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Record the job's metrics once every shard is in (once per delivery)."""

    job_id: str
    delivery: Delivery
    metadata: EventMetadata


class FailBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Mark the job failed (a dead-lettered shard or plan)."""

    job_id: str
    reason: str
    shard: int | None = None
    metadata: EventMetadata


class ReplanLostShards(msgspec.Struct, frozen=True, kw_only=True):
    """Dispatch again the unfinished shards of running jobs that no stream holds any more.

    The periodic sweeper passes ``outstanding`` (the shards the stream still holds, read before
    the jobs) and ``idle_before``: a shard still queued or in progress, and a job that moved
    since then, are left alone.
    """

    outstanding: frozenset[tuple[str, int]] = frozenset()
    idle_before: datetime | None = None


class RecordSubmission(msgspec.Struct, frozen=True, kw_only=True):
    """A sized, resolved submission (the fields of BatchJobSubmitted)."""

    job_id: str
    model_name: str
    model_version: str
    dataset_id: str
    total: int
    batch_size: int
    shard_size: int = DEFAULT_SHARD_SIZE


class CompleteShard(msgspec.Struct, frozen=True, kw_only=True):
    """Record one shard's completion."""

    job_id: str
    shard: int
    images: int
    worker: str


class CompleteBatchJob(msgspec.Struct, frozen=True, kw_only=True):
    """Record the aggregated metrics."""

    job_id: str
    metrics: dict[str, Any]
    duration_s: float


JobCommand = (
    RecordSubmission
    | PlanBatchJob
    | CompleteShard
    | CompleteBatchJob
    | FailBatchJob
    | CancelBatchJob
)
