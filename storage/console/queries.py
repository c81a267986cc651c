"""Read-side queries of the web console: every list a page at a time, never the whole log."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import redis.asyncio as aioredis
from sqlalchemy import Float, Integer, func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit.reports import AuditReport
from domain.console.views import (
    AuditRun,
    ModelRow,
    ShardFailure,
    TimelineEntry,
    VersionPoint,
    check_trace_id,
    timeline_entry,
)
from domain.errors import UnknownModel
from domain.gates.state import TERMINAL as GATE_ENDS
from domain.gates.views import outcome_of
from domain.paging.cursors import decode_cursor, page_of
from domain.registry.gate_evidence import GateOutcome
from domain.registry.views import ModelVersionView, summarize
from events.jobs import BatchJobFailed
from events.streams import gate_stream_id, job_stream_id, model_stream_id
from storage import event_store
from storage.errors import on_postgres
from storage.registry.queries import page_versions, side_streams
from storage.tables import audit_runs, event_log, gates, model_prod, model_versions


def _like(term: str) -> str:
    """A LIKE pattern matching names that contain ``term`` (its wildcards escaped)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConsoleQueries:
    """Implements domain.console.views.ConsoleReader over the projections, the log and Redis."""

    def __init__(self, engine: AsyncEngine, redis: aioredis.Redis) -> None:
        self.engine, self.redis = engine, redis

    @on_postgres
    async def page_models(
        self, search: str | None, limit: int, cursor: str | None
    ) -> tuple[list[ModelRow], str | None]:
        """Models by name, each with its prod, its latest version and its stream's last event."""
        p, v, e = model_prod.c, model_versions.alias("v"), event_log.alias("e")
        latest = (
            select(v.c.model_version)
            .where(v.c.model_name == p.model_name)
            .order_by(v.c.created_at.desc(), v.c.model_version.desc())
            .limit(1)
            .scalar_subquery()
        )
        count = select(func.count()).where(v.c.model_name == p.model_name).scalar_subquery()
        # The stream's last event: one index probe on (stream_id, stream_version).
        last = (
            select(e)
            .where(e.c.stream_id == literal("model-") + p.model_name)
            .order_by(e.c.stream_version.desc())
            .limit(1)
            .lateral("last")
        )
        q = select(p.model_name, p.model_version, latest.label("latest"), count.label("n"), last)
        q = q.select_from(model_prod.outerjoin(last, true()))
        if search:
            q = q.where(p.model_name.like(_like(search), escape="\\"))
        if cursor:
            q = q.where(p.model_name > decode_cursor(cursor, str)[0])
        q = q.order_by(p.model_name).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            event = event_store.to_recorded(r) if r.position is not None else None
            out.append(
                ModelRow(
                    model_name=r.model_name,
                    prod_version=r.model_version,
                    latest_version=r.latest,
                    versions=r.n,
                    last_change_at=event.recorded_at if event else None,
                    last_change_by=event.metadata.actor if event else None,
                    last_change=summarize(event) if event else None,
                )
            )
        return page_of(out, limit, lambda m: (m.model_name,))

    async def page_versions(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[ModelVersionView], str | None]:
        """A model's versions, newest first, a page at a time; NotFound if unknown."""
        return await page_versions(self.engine, model_name, limit, cursor, newest_first=True)

    @on_postgres
    async def version_points(self, model_name: str, limit: int) -> list[VersionPoint]:
        """The newest ``limit`` versions' figures on their reference dataset, oldest first."""
        v = model_versions.c
        q = (
            select(
                v.model_version,
                v.created_at,
                v.metrics["accuracy"].astext.cast(Float).label("accuracy"),
                v.metrics["latency_p95_ms"].astext.cast(Float).label("p95_ms"),
                v.metrics["dataset_id"].astext.label("dataset_id"),
                v.metrics["images"].astext.cast(Integer).label("images"),
            )
            .where(v.model_name == model_name)
            .order_by(v.created_at.desc(), v.model_version.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [VersionPoint(**r._asdict()) for r in reversed(rows)]

    @on_postgres
    async def page_timeline(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[TimelineEntry], str | None]:
        """The model's streams (registry, online, capture) and its gates' streams, newest first,
        by log position."""
        before = decode_cursor(cursor, int)[0] if cursor else 2**62
        ids = select(gates.c.gate_id).where(gates.c.model_name == model_name)
        async with self.engine.connect() as conn:
            streams = [model_stream_id(model_name), *side_streams(model_name)]
            streams += [gate_stream_id(g) for g in (await conn.execute(ids)).scalars()]
            q = (
                select(event_log)
                .where(event_log.c.stream_id.in_(streams), event_log.c.position < before)
                .order_by(event_log.c.position.desc())
                .limit(limit + 1)
            )
            rows = [event_store.to_recorded(r) for r in await conn.execute(q)]
            if not rows and not cursor:
                raise UnknownModel(model_name)
        page, next_cursor = page_of(rows, limit, lambda r: (r.position,))
        return [timeline_entry(r) for r in page], next_cursor

    @on_postgres
    async def shard_failures(self, job_id: str) -> list[ShardFailure]:
        """BatchJobFailed events of a job (a dead-lettered shard names itself)."""
        q = select(event_log).where(
            event_log.c.stream_id == job_stream_id(job_id),
            event_log.c.event_type == BatchJobFailed.__name__,
        )
        async with self.engine.connect() as conn:
            recorded = [event_store.to_recorded(r) for r in await conn.execute(q)]
        return [
            ShardFailure(shard=r.event.shard, reason=r.event.reason, recorded_at=r.recorded_at)
            for r in recorded
            if isinstance(r.event, BatchJobFailed)
        ]

    @on_postgres
    async def candidate_gates(
        self, model_name: str, candidate: str, limit: int
    ) -> list[GateOutcome]:
        """A candidate's finished gates, newest first, as the promotion rule reads them."""
        c = gates.c
        picked = (c.gate_id, c.model_name, c.candidate_version, c.baseline_version, c.verdict)
        q = (
            select(*picked, c.decided_at, c.dataset_id, c.accuracy)
            .where(
                c.model_name == model_name,
                c.candidate_version == candidate,
                c.status.in_(sorted(GATE_ENDS)),
            )
            .order_by(c.decided_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [outcome_of(r._asdict()) for r in await conn.execute(q)]

    @on_postgres
    async def trace_events(self, trace_id: str, limit: int) -> list[TimelineEntry]:
        """Events whose trace context carries ``trace_id``, newest first."""
        pattern = f"00-{check_trace_id(trace_id)}-%"
        q = (
            select(event_log)
            .where(event_log.c.trace_context.like(pattern))
            .order_by(event_log.c.position.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [timeline_entry(event_store.to_recorded(r)) for r in await conn.execute(q)]

    @on_postgres
    async def latest_audit(self) -> AuditRun | None:
        """The latest audit run, kept in PostgreSQL (None before the first)."""
        q = select(audit_runs.c.run).order_by(audit_runs.c.run_id.desc()).limit(1)
        async with self.engine.connect() as conn:
            raw = await conn.scalar(q)
        return msgspec.convert(raw, AuditRun, strict=False) if raw is not None else None

    @on_postgres
    async def record_audit(self, report: AuditReport, actor: str, source: str) -> None:
        """Keep ``report`` as the latest audit run (every run stays in audit_runs)."""
        run = AuditRun(report=report, finished_at=datetime.now(UTC), actor=actor, source=source)
        values = {
            "finished_at": run.finished_at,
            "actor": actor,
            "source": source,
            "ok": report.ok,
            "run": msgspec.to_builtins(run),
        }
        async with self.engine.begin() as conn:
            await conn.execute(audit_runs.insert().values(**values))
