"""Ports of batch jobs: datasets, the shard queue and evaluator, the read side, the limits, and
the dataclasses of ports the job handlers take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.ports import Clock, UnitOfWorkFactory
from domain.registry.state import VersionState
from domain.registry.views import JobView


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


@dataclass(frozen=True, kw_only=True)
class JobLimits:
    """How jobs are cut and capped (SHARD_SIZE, MAX_SHARDS_PER_JOB, MAX_ACTIVE_JOBS_PER_KEY)."""

    shard_size: int = 1000
    max_shards: int | None = None
    max_active: int | None = None


@dataclass(frozen=True, kw_only=True)
class JobPorts:
    """What the job handlers use (submit, cancel, plan, aggregate, fail, re-plan)."""

    uow: UnitOfWorkFactory
    datasets: DatasetCatalog
    queue: ShardQueue
    clock: Clock
    limits: JobLimits = JobLimits()


@dataclass(frozen=True, kw_only=True)
class ShardPorts:
    """What a worker's shard handler uses: the model runs only where an evaluator is built."""

    uow: UnitOfWorkFactory
    evaluator: ShardEvaluator
