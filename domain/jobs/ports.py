"""Ports of batch jobs: datasets, the shard queue and evaluator, the read side, the limits, and
the dataclasses of ports the job handlers take."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from domain.ports import Clock, UnitOfWorkFactory
from domain.registry.state import VersionState
from domain.registry.views import JobView

if TYPE_CHECKING:
    from domain.jobs.aggregate import JobState


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


class ShardPlans:
    """The plans of the jobs whose shards a worker ran, with their model versions.

    A job's plan (model, version, dataset, bounds, batch size) and a registered version never
    change, so a worker's later shards of a job read only its status and stored shards instead of
    folding the job's and the model's streams again (two of a shard's three stream loads).
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._plans: OrderedDict[str, tuple[JobState, VersionState]] = OrderedDict()

    def get(self, job_id: str) -> tuple[JobState, VersionState] | None:
        """The remembered plan and version of a job, if any."""
        plan = self._plans.get(job_id)
        if plan is not None:
            self._plans.move_to_end(job_id)
        return plan

    def remember(self, job: JobState, version: VersionState) -> None:
        """Keep a job's plan and version; the least recently used goes past ``size``."""
        self._plans[job.job_id] = (job, version)
        self._plans.move_to_end(job.job_id)
        while len(self._plans) > self.size:
            self._plans.popitem(last=False)


@dataclass(frozen=True, kw_only=True)
class ShardPorts:
    """What a worker's shard handler uses: the model runs only where an evaluator is built."""

    uow: UnitOfWorkFactory
    evaluator: ShardEvaluator
    plans: ShardPlans = field(default_factory=ShardPlans)
