"""Implements domain.traffic.ports: capture policies and frozen datasets in the log, the
captured_requests table (recorded, labelled, expired) and frozen datasets' rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import Conflict, InvalidInput
from domain.traffic.commands import CapturedRow
from domain.traffic.policy import Captured, CapturePolicy, CaptureState
from domain.traffic.ports import BuildFrozen
from events.base import EventMetadata, RecordedEvent
from events.traffic import CapturePolicySet, traffic_dataset_stream_id
from storage import event_store
from storage.errors import on_postgres
from storage.repository import EventSourcedRepository
from storage.tables import capture_policies, captured_requests, traffic_dataset_items
from storage.traffic.projection import CAPTURES

DTYPES = {"uint8": np.uint8, "float32": np.float32}


class PostgresTrafficLog:
    """Capture policies (``capture-<model>``, projected) and frozen datasets in the log."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def load_policy(self, model_name: str) -> CaptureState:
        """The model's policy folded from its stream."""
        async with self.engine.connect() as conn:
            return await EventSourcedRepository(conn, CAPTURES).load(model_name)

    @on_postgres
    async def save_policy(
        self, state: CaptureState, event: CapturePolicySet, metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append and project in one transaction."""
        async with event_store.begin_logged(self.engine) as conn:
            return await EventSourcedRepository(conn, CAPTURES).save(state, [event], metadata)

    @on_postgres
    async def policies(self) -> list[CapturePolicy]:
        """Every projected policy (what each API process refreshes)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(capture_policies))).mappings().all()
        return [CapturePolicy(**dict(r)) for r in rows]

    @on_postgres
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
        """Select, record and copy in one transaction (Conflict when the dataset exists)."""
        c = captured_requests
        q = select(c.c.request_id, c.c.input, c.c.input_dtype, c.c.label).where(
            c.c.model_name == model_name, c.c.expires_at > func.now()
        )
        if since is not None:
            q = q.where(c.c.captured_at >= since)
        if until is not None:
            q = q.where(c.c.captured_at < until)
        if labelled_only:
            q = q.where(c.c.label.is_not(None))
        stream_id = traffic_dataset_stream_id(name)
        dataset_id = f"traffic:{name}"
        async with event_store.begin_logged(self.engine) as conn:
            if await event_store.load_stream(conn, stream_id):
                raise Conflict(f"dataset {dataset_id} exists already; frozen datasets never change")
            rows = (await conn.execute(q.order_by(c.c.captured_at, c.c.request_id))).all()
            event = build(list(rows))
            recorded = await event_store.append(conn, stream_id, 0, [event], metadata)
            items = [
                {
                    "dataset_id": dataset_id,
                    "idx": i,
                    "request_id": r.request_id,
                    "input": r.input,
                    "input_dtype": r.input_dtype,
                    "label": r.label,
                }
                for i, r in enumerate(rows)
            ]
            for start in range(0, len(items), 2000):
                await conn.execute(insert(traffic_dataset_items), items[start : start + 2000])
            return recorded


class PostgresCapturedRequests:
    """The captured_requests table: recorded, labelled, read back and expired."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def record(self, rows: list[CapturedRow]) -> int:
        """Insert rows; ids already stored are skipped (a redelivered batch)."""
        values = [
            {
                "request_id": r.request_id,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "captured_at": r.captured_at,
                "expires_at": r.captured_at + timedelta(days=r.retention_days),
                "input": r.input,
                "input_dtype": r.input_dtype,
                "prediction": r.prediction,
                "scores": r.scores,
                "latency_ms": r.latency_ms,
                "trace_id": r.trace_id,
                "routed": r.routed,
            }
            for r in rows
        ]
        stmt = pg_insert(captured_requests).on_conflict_do_nothing(index_elements=["request_id"])
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt.returning(captured_requests.c.request_id), values)
            return len(result.all())

    @on_postgres
    async def label(
        self,
        items: list[tuple[str, int]],
        judge: Callable[[dict[str, Captured]], list[tuple[str, int]]],
        now: datetime,
    ) -> int:
        """Lock the live rows named, judge, write the new labels; all or none."""
        c = captured_requests
        ids = [rid for rid, _ in items]
        q = (
            select(c.c.request_id, func.cardinality(c.c.scores), c.c.label)
            .where(c.c.request_id.in_(ids), c.c.expires_at > now)
            .with_for_update()
        )
        async with self.engine.begin() as conn:
            found = {r[0]: Captured(int(r[1]), r[2]) for r in await conn.execute(q)}
            writes = judge(found)
            for rid, label in writes:
                await conn.execute(
                    update(c)
                    .where(c.c.request_id == rid, c.c.label.is_(None))
                    .values(label=label, labelled_at=now)
                )
        return len(writes)

    @on_postgres
    async def labels_for(self, request_ids: list[str]) -> dict[str, int]:
        """Request id -> label, for the ids that have one."""
        if not request_ids:
            return {}
        c = captured_requests
        q = select(c.c.request_id, c.c.label).where(
            c.c.request_id.in_(request_ids), c.c.label.is_not(None)
        )
        async with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in await conn.execute(q)}

    @on_postgres
    async def expire(self, now: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` requests past their retention; how many."""
        c = captured_requests
        doomed = select(c.c.request_id).where(c.c.expires_at <= now).limit(limit)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(c).where(c.c.request_id.in_(doomed)))
            return result.rowcount or 0


class TrafficDatasets:
    """Frozen traffic datasets for the catalogue and the batch workers: labelled rows only."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def size(self, dataset_id: str) -> int:
        """Labelled images of a frozen dataset; InvalidInput when it does not exist."""
        t = traffic_dataset_items
        async with self.engine.connect() as conn:
            total, labelled = (
                await conn.execute(
                    select(func.count(), func.count(t.c.label)).where(t.c.dataset_id == dataset_id)
                )
            ).one()
        if not total:
            raise InvalidInput(
                f"no frozen traffic dataset {dataset_id!r}; `just dataset-from-traffic` makes one"
            )
        if not labelled:
            raise InvalidInput(
                f"{dataset_id} holds {total} requests and none has a label; only labelled "
                "requests can be evaluated (POST /feedback, then freeze a new dataset)"
            )
        return int(labelled)

    @on_postgres
    async def load(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Images (uint8, or float32 in [0, 1] when any was) and labels of the labelled rows."""
        t = traffic_dataset_items
        q = (
            select(t.c.input, t.c.input_dtype, t.c.label)
            .where(t.c.dataset_id == dataset_id, t.c.label.is_not(None))
            .order_by(t.c.idx)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        parts = [np.frombuffer(r.input, DTYPES[r.input_dtype]).reshape(28, 28) for r in rows]
        if any(p.dtype != np.uint8 for p in parts):  # as the batcher joins mixed requests
            parts = [p / np.float32(255) if p.dtype == np.uint8 else p for p in parts]
        images = np.stack(parts) if parts else np.zeros((0, 28, 28), np.uint8)
        return images, np.array([r.label for r in rows], dtype=np.int64)
