"""Console pages of the work: a job (live progress, metrics, heatmap, failed shards), a gate (the
verdict table, live until decided), the events of one trace, and the audit (admins run it)."""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Port
from api.ui.figures import check_cells, class_names, heatmap, metric_rows
from api.ui.session import page
from domain.console.views import AuditRunner, ConsoleReader, check_trace_id
from domain.errors import Conflict
from domain.gates import aggregate as gate_rules
from domain.gates.ports import GateReader
from domain.jobs import aggregate as job_rules
from domain.jobs.ports import JobReader

Console = Port[ConsoleReader]
POLL_S = 1  # how often a page of unfinished work asks for its news
TRACE_EVENTS = 200
_audit_running = asyncio.Lock()  # one audit at a time per process: it reads the whole log


async def _job_context(job_id: str, jobs: JobReader, console: ConsoleReader) -> dict:
    job = await jobs.get(job_id)
    metrics = job.result_metrics or {}
    matrix = metrics.get("confusion_matrix")
    total = job.progress.total or 1
    return {
        "job": job,
        "active": job.status not in job_rules.TERMINAL,
        "percent": round(100 * job.progress.done / total),
        "metrics": metric_rows(metrics),
        "per_class": metrics.get("per_class") or [],
        "heat": heatmap(matrix, class_names(metrics)) if matrix else None,
        "failures": await console.shard_failures(job_id),
        "poll_s": POLL_S,
    }


async def _gate_context(gate_id: str, gates: GateReader) -> dict:
    gate = await gates.get(gate_id)
    return {
        "gate": gate,
        "active": gate.status not in gate_rules.TERMINAL,
        "checks": [check_cells(c) for c in gate.checks],
        "poll_s": POLL_S,
    }


class WorkPages(Controller):
    """Jobs, gates, traces and the audit in the console."""

    path = "/"
    include_in_schema = False

    @get("/jobs/{job_id:str}")
    async def job(
        self,
        request: Request,
        job_queries: Port[JobReader],
        console: Console,
        job_id: FromPath[str],
    ) -> Template:
        """A job; its live part refreshes itself while the job runs."""
        return page(request, "job.html", **await _job_context(job_id, job_queries, console))

    @get("/jobs/{job_id:str}/live")
    async def job_live(
        self,
        request: Request,
        job_queries: Port[JobReader],
        console: Console,
        job_id: FromPath[str],
    ) -> Template:
        """The live part of a job page (htmx polls it until the job finishes)."""
        return page(request, "job_live.html", **await _job_context(job_id, job_queries, console))

    @get("/gates/{gate_id:str}")
    async def gate(
        self, request: Request, gate_queries: Port[GateReader], gate_id: FromPath[str]
    ) -> Template:
        """A gate's verdict table; refreshes itself until the verdict."""
        return page(request, "gate.html", **await _gate_context(gate_id, gate_queries))

    @get("/gates/{gate_id:str}/live")
    async def gate_live(
        self, request: Request, gate_queries: Port[GateReader], gate_id: FromPath[str]
    ) -> Template:
        """The live part of a gate page."""
        return page(request, "gate_live.html", **await _gate_context(gate_id, gate_queries))

    @get("/traces/{trace_id:str}")
    async def trace(self, request: Request, console: Console, trace_id: FromPath[str]) -> Template:
        """Every event recorded under one trace id (paste the id into your tracing backend)."""
        trace_id = check_trace_id(trace_id)
        events = await console.trace_events(trace_id, TRACE_EVENTS)
        return page(request, "trace.html", trace_id=trace_id, events=events, limit=TRACE_EVENTS)

    @get("/audit")
    async def audit_page(self, request: Request, console: Console) -> Template:
        """The latest `just audit` run, from the CLI or from here."""
        run = await console.latest_audit()
        return page(request, "audit.html", run=run, running=_audit_running.locked())

    @post("/audit/run", opt={"console_role": "admin"}, status_code=303)
    async def run_audit(
        self, request: Request, console: Console, audit: Port[AuditRunner]
    ) -> Redirect:
        """Run every audit check now (seconds on 100,000 events) and keep the result."""
        if _audit_running.locked():
            raise Conflict("an audit is already running in this process; wait for its result")
        async with _audit_running:
            report = await audit.audit()
        await console.record_audit(report, request.state.actor, "console")
        return Redirect("/ui/audit", status_code=303)
