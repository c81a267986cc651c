"""Console pages of the registry: the models, one model (versions, timeline, chart, prod at a
time), and the promote and roll-back forms, which take the API's own path (api.registry)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from api import registry
from api.deps import Bus, Port
from api.pages import Cursor
from api.ui.figures import line_chart
from api.ui.session import page
from domain import names
from domain.audit.reports import AuditPort, parse_time
from domain.console.views import MAX_SEARCH, ConsoleReader, check_search
from domain.errors import Conflict, DomainError, InvalidInput
from domain.gates.ports import GateReader
from domain.names import MAX_REASON
from domain.paging.ports import JobPages
from domain.registry.ports import RegistryReader

Console = Port[ConsoleReader]
PAGE = 25  # rows per page of versions, timeline and models
CHART_VERSIONS = 200  # the chart shows the newest versions; their table pages through all
Search = Annotated[str | None, QueryParameter(max_length=MAX_SEARCH * 2)]
Moment = Annotated[str | None, QueryParameter(max_length=64)]
Operator = {"console_role": "operator"}
_STATUS = {InvalidInput: 400, Conflict: 409}


def _status(exc: DomainError) -> int:
    return next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)


async def _reason(request: Request) -> tuple[str | None, bool, bool]:
    """The form's reason, its confirmation box and its force box."""
    form = await request.form()
    reason = (form.get("reason") or "").strip() or None
    return reason, form.get("confirm") == "yes", form.get("force") == "yes"


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
        """Versions, timeline, chart, recent jobs and gates; with ``at``, prod at that moment."""
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
            line_chart(points, "accuracy", "Accuracy", ".2%"),
            line_chart(points, "p95_ms", "p95 batch latency", ",.2f", " ms"),
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
        )

    @get("/models/{name:str}/versions/{version:str}/promote", opt=Operator)
    async def confirm_promote(
        self,
        request: Request,
        queries: Port[RegistryReader],
        name: FromPath[str],
        version: FromPath[str],
    ) -> Template:
        """Ask for a reason and a confirmation before promoting."""
        name, version = names.check_model_name(name), names.check_version(version)
        v = await queries.get_version(name, version)
        prod = await queries.require_prod(name)
        return page(
            request,
            "promote.html",
            name=name,
            version=v,
            prod=prod,
            error=None,
            reason="",
            max_reason=MAX_REASON,
        )

    @post("/models/{name:str}/versions/{version:str}/promote", opt=Operator, status_code=303)
    async def promote(
        self,
        request: Request,
        bus: Bus,
        queries: Port[RegistryReader],
        name: FromPath[str],
        version: FromPath[str],
    ) -> Redirect | Template:
        """Promote through the API's handler; back to the model, whose timeline shows it."""
        name, version = names.check_model_name(name), names.check_version(version)
        reason, confirmed, force = await _reason(request)
        try:
            if not confirmed or not reason:
                raise InvalidInput("tick the confirmation and give a reason to promote")
            await registry.promote(bus, request, name, version, reason, force)
        except (InvalidInput, Conflict) as exc:
            v = await queries.get_version(name, version)
            return page(
                request,
                "promote.html",
                _status(exc),
                name=name,
                version=v,
                prod=await queries.require_prod(name),
                error=str(exc),
                reason=reason or "",
                max_reason=MAX_REASON,
            )
        return Redirect(f"/ui/models/{name}", status_code=303)

    @get("/models/{name:str}/rollback", opt=Operator)
    async def confirm_rollback(
        self, request: Request, queries: Port[RegistryReader], name: FromPath[str]
    ) -> Template:
        """Ask for a reason and a confirmation before rolling back."""
        name = names.check_model_name(name)
        prod = await queries.require_prod(name)
        return page(
            request,
            "rollback.html",
            name=name,
            prod=prod,
            error=None,
            reason="",
            max_reason=MAX_REASON,
        )

    @post("/models/{name:str}/rollback", opt=Operator, status_code=303)
    async def rollback(
        self,
        request: Request,
        bus: Bus,
        queries: Port[RegistryReader],
        name: FromPath[str],
    ) -> Redirect | Template:
        """Roll back through the API's handler."""
        name = names.check_model_name(name)
        reason, confirmed, _ = await _reason(request)
        try:
            if not confirmed or not reason:
                raise InvalidInput("tick the confirmation and give a reason to roll back")
            await registry.roll_back(bus, request, name, reason)
        except (InvalidInput, Conflict) as exc:
            return page(
                request,
                "rollback.html",
                _status(exc),
                name=name,
                prod=await queries.require_prod(name),
                error=str(exc),
                reason=reason or "",
                max_reason=MAX_REASON,
            )
        return Redirect(f"/ui/models/{name}", status_code=303)
