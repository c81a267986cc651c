"""Console pages of the registry: the models and one model (versions, timeline, chart, prod at a
time). The promote and roll-back forms are in api/ui/promotion.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from api.deps import Bus, Port
from api.pages import Cursor
from api.ui.figures import dataset_charts
from api.ui.online import online_context
from api.ui.session import page
from domain import names
from domain.audit.reports import AuditPort, parse_time
from domain.console.views import MAX_SEARCH, ConsoleReader, check_search
from domain.errors import DomainError, InvalidInput
from domain.gates.ports import GateReader
from domain.paging.ports import JobPages
from domain.registry.ports import RegistryReader

Console = Port[ConsoleReader]
PAGE = 25  # rows per page of versions, timeline and models
CHART_VERSIONS = 200  # the chart shows the newest versions; their table pages through all
Search = Annotated[str | None, QueryParameter(max_length=MAX_SEARCH * 2)]
Moment = Annotated[str | None, QueryParameter(max_length=64)]


class ModelPages(Controller):
    """The registry in the console."""

    path = "/"
    include_in_schema = False

    @get("/")
    async def home(self) -> Redirect:
        """The console opens on the models."""
        return Redirect("/ui/models")

    @get("/models")
    async def models(
        self, request: Request, console: Console, q: Search = None, cursor: Cursor = None
    ) -> Template:
        """Every model with its prod and latest version and its last change; search by name."""
        try:
            term = check_search(q)
        except InvalidInput as exc:
            return page(request, "models.html", 400, rows=[], q=q, error=str(exc), next=None)
        rows, next_cursor = await console.page_models(term, PAGE, cursor)
        return page(request, "models.html", rows=rows, q=term or "", next=next_cursor, error=None)

    @get("/models/{name:str}")
    async def model(
        self,
        request: Request,
        bus: Bus,
        console: Console,
        queries: Port[RegistryReader],
        audit: Port[AuditPort],
        job_queries: Port[JobPages],
        gate_queries: Port[GateReader],
        name: FromPath[str],
        at: Moment = None,
        vc: Cursor = None,
        tc: Cursor = None,
    ) -> Template:
        """Versions, timeline, chart, recent jobs and gates, capture, shadow and canary; with
        ``at``, prod at that moment."""
        name = names.check_model_name(name)
        prod = await queries.require_prod(name)
        versions, next_versions = await console.page_versions(name, PAGE, vc)
        timeline, next_timeline = await console.page_timeline(name, PAGE, tc)
        points = await console.version_points(name, CHART_VERSIONS)
        jobs, _ = await job_queries.page(name, None, 10, None)
        gates, _ = await gate_queries.page_for_model(name, 10, None)
        moment, at_error = None, None
        if at:  # the same query as GET /models/{name}?at=
            try:
                moment = await audit.model_at(name, parse_time(at, "time"))
            except DomainError as exc:
                at_error = str(exc)
        charts = [
            *dataset_charts(points, "accuracy", "Accuracy", ".2%"),
            *dataset_charts(points, "p95_ms", "p95 batch latency", ",.2f", " ms"),
        ]
        return page(
            request,
            "model.html",
            400 if at_error else 200,
            name=name,
            prod=prod,
            versions=versions,
            next_versions=next_versions,
            timeline=timeline,
            next_timeline=next_timeline,
            charts=[c for c in charts if c],
            jobs=jobs,
            gates=gates,
            at=at or "",
            moment=moment,
            at_error=at_error,
            vc=vc,
            tc=tc,
            now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"),
            **await online_context(bus, name),
        )
