"""Regression gates over the event log, with the ``gates`` projection kept in the same transaction."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.gates.aggregate import EVALUATING, TERMINAL, GateState, evolve, fold
from domain.registry.gate_policy import GateOutcome
from events.base import Event, EventMetadata, RecordedEvent
from events.streams import gate_stream_id
from storage import event_store
from storage.projections import GATE_PROJECTION, set_checkpoint, write_gate_projection
from storage.tables import gates


class PostgresGateStore:
    """Implements domain.ports.GateStore inside one unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(self, gate_id: str) -> GateState:
        """Fold the gate's stream."""
        return fold(gate_id, await event_store.load_stream(self.conn, gate_stream_id(gate_id)))

    async def save(
        self, state: GateState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append to the gate's stream and update its gates row."""
        if not events:
            return []
        recorded = await event_store.append(
            self.conn, gate_stream_id(state.gate_id), state.stream_version, events, metadata
        )
        for r in recorded:
            evolve(state, r)
        await write_gate_projection(self.conn, state)
        await set_checkpoint(self.conn, GATE_PROJECTION, recorded[-1].position)
        return recorded

    async def outcomes(self, model_name: str, candidate_version: str) -> list[GateOutcome]:
        """Finished gates of one candidate version, newest first."""
        c = gates.c
        picked = (c.gate_id, c.model_name, c.candidate_version, c.baseline_version, c.verdict)
        rows = await self.conn.execute(
            select(*picked, c.decided_at)
            .where(
                gates.c.model_name == model_name,
                gates.c.candidate_version == candidate_version,
                gates.c.status.in_(sorted(TERMINAL)),
            )
            .order_by(gates.c.decided_at.desc())
        )
        return [GateOutcome(**r._asdict()) for r in rows]

    async def waiting_on(self, job_id: str) -> list[str]:
        """Gates still evaluating that compare ``job_id``'s predictions."""
        rows = await self.conn.execute(
            select(gates.c.gate_id)
            .where(
                gates.c.status == EVALUATING,
                or_(gates.c.candidate_job_id == job_id, gates.c.baseline_job_id == job_id),
            )
            .order_by(gates.c.requested_at)
        )
        return list(rows.scalars())

    async def submitted_by(self, job_id: str) -> str | None:
        """The gate that submitted evaluation job ``job_id``, if any."""
        row = await self.conn.execute(
            select(gates.c.gate_id)
            .where(or_(gates.c.candidate_job_id == job_id, gates.c.baseline_job_id == job_id))
            .where(gates.c.submitted.has_key(job_id))  # jsonb ?: a string element of the array
            .limit(1)
        )
        return row.scalar()
