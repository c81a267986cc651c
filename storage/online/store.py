"""Implements domain.online.ports: shadows and canaries in the log (projected to online_runs),
and the paired outcomes table with the labels feedback gave (captured_requests)."""

from __future__ import annotations

import msgspec
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.online.judge import Counts
from domain.online.state import CanaryRun, Ended, OnlineState, ShadowRun
from events.base import Event, EventMetadata, RecordedEvent
from events.online import PairedOutcome
from storage import event_store
from storage.errors import on_postgres
from storage.online.projection import ONLINE
from storage.online.tables import online_outcomes, online_runs
from storage.repository import EventSourcedRepository


def state_of(row) -> OnlineState:
    """An online_runs row as the state it projects (without its stream version)."""
    return OnlineState(
        model_name=row["model_name"],
        shadow=msgspec.convert(row["shadow"], ShadowRun) if row["shadow"] else None,
        canary=msgspec.convert(row["canary"], CanaryRun) if row["canary"] else None,
        ended=msgspec.convert(row["ended"] or [], list[Ended]),
    )


class PostgresOnlineLog:
    """``online-<model>`` streams, appended and projected in one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def load(self, model_name: str) -> OnlineState:
        """The model's state folded from its stream."""
        async with self.engine.connect() as conn:
            return await EventSourcedRepository(conn, ONLINE).load(model_name)

    @on_postgres
    async def save(
        self, state: OnlineState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at the state's version (stale: ConcurrencyConflict) and project."""
        async with event_store.begin_logged(self.engine) as conn:
            return await EventSourcedRepository(conn, ONLINE).save(state, events, metadata)

    @on_postgres
    async def running(self) -> list[OnlineState]:
        """Every model with a shadow or canary running (one small query, every half second)."""
        q = select(online_runs).where(
            online_runs.c.shadow.is_not(None) | online_runs.c.canary.is_not(None)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [state_of(r) for r in rows]

    @on_postgres
    async def all_states(self) -> list[OnlineState]:
        """Every model's projected state (the console's overview)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(online_runs))).mappings().all()
        return [state_of(r) for r in rows]


_COUNTS = text(
    """
    WITH o AS (
      SELECT o.*, c.label,
             o.prod_prediction IS NULL AS pe, o.candidate_prediction IS NULL AS ce
      FROM online_outcomes o LEFT JOIN captured_requests c ON c.request_id = o.request_id
      WHERE o.run_id = :run AND (CAST(:step AS integer) IS NULL OR o.step = :step)
    ), a AS (
      SELECT *, (NOT pe AND NOT ce) AS both_ok,
             (NOT pe AND NOT ce AND label IS NOT NULL) AS lab FROM o
    )
    SELECT count(*) AS outcomes,
      count(*) FILTER (WHERE served_by IS DISTINCT FROM 'prod') AS candidate_served,
      count(*) FILTER (WHERE both_ok AND prod_prediction = candidate_prediction) AS agree,
      count(*) FILTER (WHERE both_ok) AS answered,
      count(*) FILTER (WHERE lab) AS labelled,
      count(*) FILTER (WHERE lab AND prod_prediction = label) AS prod_right,
      count(*) FILTER (WHERE lab AND candidate_prediction = label) AS candidate_right,
      count(*) FILTER (WHERE lab AND candidate_prediction = label AND prod_prediction <> label)
        AS candidate_only_right,
      count(*) FILTER (WHERE lab AND prod_prediction = label AND candidate_prediction <> label)
        AS prod_only_right,
      count(*) FILTER (WHERE pe) AS prod_errors,
      count(*) FILTER (WHERE ce) AS candidate_errors,
      count(*) FILTER (WHERE ce AND NOT pe) AS candidate_only_errors,
      count(*) FILTER (WHERE pe AND NOT ce) AS prod_only_errors,
      count(*) FILTER (WHERE both_ok AND prod_latency_ms IS NOT NULL
                       AND candidate_latency_ms IS NOT NULL) AS timed,
      -- The cast: "1 + $n" types the parameter as an integer, and asyncpg sent 0.2 as 0.
      count(*) FILTER (WHERE both_ok
                       AND candidate_latency_ms > (1 + CAST(:margin AS float8)) * prod_latency_ms)
        AS slower,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY prod_latency_ms) AS prod_p95_ms,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY candidate_latency_ms) AS candidate_p95_ms
    FROM a
    """
)


class PostgresOutcomes:
    """The online_outcomes table, its counts joined with captured_requests' labels."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def record(self, rows: list[PairedOutcome]) -> int:
        """Insert rows; (run, request) pairs already stored are skipped (a redelivery)."""
        values = [msgspec.structs.asdict(r) for r in rows]
        stmt = pg_insert(online_outcomes).on_conflict_do_nothing()
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt.returning(online_outcomes.c.run_id), values)
            return len(result.all())

    @on_postgres
    async def counts(self, run_id: str, latency_margin: float, step: int | None = None) -> Counts:
        """What the run's outcomes add up to (of one step, or all)."""
        params = {"run": run_id, "step": step, "margin": latency_margin}
        async with self.engine.connect() as conn:
            row = (await conn.execute(_COUNTS, params)).mappings().one()
        values = dict(row)
        for k in ("prod_p95_ms", "candidate_p95_ms"):
            values[k] = None if values[k] is None else round(float(values[k]), 3)
        return Counts(**values)
