"""Ports of regression gates: paired latency, the read side, and the ports its handlers take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec

from domain.gates.views import GateView
from domain.jobs.ports import DatasetCatalog, JobPorts
from domain.ports import Clock, UnitOfWorkFactory
from domain.registry.approvals import PromotionRequestView
from domain.registry.state import VersionState


class LatencyRun(msgspec.Struct, frozen=True, kw_only=True):
    """A paired latency run: index i of both lists timed on the same batch, back to back."""

    baseline_ms: list[float]
    candidate_ms: list[float]
    batch_size: int
    order: str


class PairedLatencyMeter(Protocol):
    """Times two versions alternately on the same batches of a dataset, in one process."""

    async def measure(
        self, baseline: VersionState, candidate: VersionState, dataset_id: str
    ) -> LatencyRun:
        """One paired run; InvalidInput / NotFound when a model or the dataset cannot load."""
        ...


class GateReader(Protocol):
    """Read side of regression gates."""

    async def get(self, gate_id: str) -> GateView:
        """One gate; NotFound if unknown."""
        ...

    async def page_for_model(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[GateView], str | None]:
        """A model's gates, newest first, a page at a time, and the next page's cursor."""
        ...

    async def pending_promotions(self, now: datetime) -> list[PromotionRequestView]:
        """Promotion requests still open at ``now`` (four eyes), oldest first, every model."""
        ...


@dataclass(frozen=True, kw_only=True)
class GatePorts:
    """What the gate handlers use; ``jobs`` submits the evaluations a gate needs."""

    uow: UnitOfWorkFactory
    datasets: DatasetCatalog
    clock: Clock
    jobs: JobPorts


@dataclass(frozen=True, kw_only=True)
class VerdictPorts:
    """What judging a gate uses: the paired latency run needs a worker's models."""

    uow: UnitOfWorkFactory
    latency: PairedLatencyMeter
