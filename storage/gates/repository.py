"""Regression gates over the event log, with the ``gates`` projection kept in the same transaction."""

from __future__ import annotations

from sqlalchemy import or_, select

from domain.gates.state import EVALUATING, TERMINAL, GateState
from domain.gates.views import outcome_of
from domain.registry.gate_policy import GateOutcome
from storage.gates.projection import GATES
from storage.repository import EventSourcedRepository
from storage.tables import gates


class PostgresGateStore(EventSourcedRepository[GateState]):
    """Implements domain.gates.ports.GateStore inside one unit of work's connection."""

    projection = GATES

    async def outcomes(self, model_name: str, candidate_version: str) -> list[GateOutcome]:
        """Finished gates of one candidate version, newest first."""
        c = gates.c
        picked = (c.gate_id, c.model_name, c.candidate_version, c.baseline_version, c.verdict)
        rows = await self.conn.execute(
            select(*picked, c.decided_at, c.dataset_id, c.accuracy, c.checks)
            .where(
                gates.c.model_name == model_name,
                gates.c.candidate_version == candidate_version,
                gates.c.status.in_(sorted(TERMINAL)),
            )
            .order_by(gates.c.decided_at.desc())
        )
        return [outcome_of(r._asdict()) for r in rows]

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
