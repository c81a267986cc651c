"""Ports of traffic capture: the policy and dataset streams, and the captured requests table.

ONLINE (shadow, canary) reads labels through ``LabelReader.labels_for``; the table is
``CAPTURED_TABLE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.ports import Clock, UnitOfWorkFactory
from domain.traffic.commands import CapturedRow
from domain.traffic.policy import Captured, CapturePolicy, CaptureState
from events.base import EventMetadata, RecordedEvent
from events.traffic import CapturePolicySet, TrafficDatasetFrozen

CAPTURED_TABLE = "captured_requests"


class LabelReader(Protocol):
    """The labels feedback gave (read by the shadow and canary evaluations)."""

    async def labels_for(self, request_ids: list[str]) -> dict[str, int]:
        """Request id -> label, for the ids that have one."""
        ...


class FrozenRow(Protocol):
    """A captured request as frozen into a dataset."""

    request_id: str
    input: bytes
    input_dtype: str
    label: int | None


BuildFrozen = Callable[[list[FrozenRow]], TrafficDatasetFrozen]


class TrafficLog(Protocol):
    """Capture policies and frozen datasets in the event log (and their projections)."""

    async def load_policy(self, model_name: str) -> CaptureState:
        """The model's policy folded from ``capture-<model>``."""
        ...

    async def save_policy(
        self, state: CaptureState, event: CapturePolicySet, metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` and update the policies every API process reads."""
        ...

    async def policies(self) -> list[CapturePolicy]:
        """Every model's current capture policy."""
        ...

    async def freeze(
        self,
        name: str,
        model_name: str,
        since: datetime | None,
        until: datetime | None,
        labelled_only: bool,
        build: BuildFrozen,
        metadata: EventMetadata,
    ) -> list[RecordedEvent]:
        """In one transaction: select the requests, record ``build(rows)`` as the dataset's first
        event and copy the rows into the dataset (Conflict when the dataset exists)."""
        ...


class CapturedStore(LabelReader, Protocol):
    """The captured_requests table."""

    async def record(self, rows: list[CapturedRow]) -> int:
        """Insert rows (known ids are skipped); how many were new."""
        ...

    async def label(
        self,
        items: list[tuple[str, int]],
        judge: Callable[[dict[str, Captured]], list[tuple[str, int]]],
        now: datetime,
    ) -> int:
        """Lock the named live requests, ``judge`` them, write the labels it returns; their count."""
        ...


@dataclass(frozen=True, kw_only=True)
class TrafficPorts:
    """What the traffic handlers use."""

    uow: UnitOfWorkFactory
    log: TrafficLog
    captured: CapturedStore
    clock: Clock
