"""Registry endpoints: list, register, promote, roll back, history.

``promote`` and ``roll_back`` are the one code path of those commands over HTTP: the API's
routes and the console's forms (api/ui/models.py) both call them.
"""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata, role_for
from api.body_fields import strict_body
from api.deps import Bus, Config, Port
from api.gates import PromoteRequest
from api.pages import NEXT_PAGE_HEADER, Cursor, Limit, page_size, paged
from api.schemas import (
    PromoteResponse,
    ReasonRequest,
    RegisterVersionRequest,
    RegisterVersionResponse,
    RollbackResponse,
)
from domain import names
from domain.bus import MessageBus
from domain.paging.ports import RegistryPages
from domain.registry.commands import PromoteModelVersion, RegisterModelVersion, RollbackModel
from domain.registry.views import HistoryEntry, ModelSummary, ModelVersionView
from domain.transactions import CommandResult
from events.registry import ModelVersionPromoted, ModelVersionRolledBack

Pages = Port[RegistryPages]


async def promote(
    bus: MessageBus, request: Request, name: str, version: str, reason: str | None, force: bool
) -> CommandResult:
    """Promote a version as the caller of ``request``."""
    cmd = PromoteModelVersion(
        model_name=names.check_model_name(name),
        model_version=names.check_version(version),
        reason=reason,
        force=force,
        role=role_for(request),
        metadata=event_metadata(request),
    )
    return await bus.handle(cmd)


async def roll_back(
    bus: MessageBus, request: Request, name: str, reason: str | None
) -> CommandResult:
    """Roll a model back as the caller of ``request``."""
    cmd = RollbackModel(
        model_name=names.check_model_name(name), reason=reason, metadata=event_metadata(request)
    )
    return await bus.handle(cmd)


class RegistryController(Controller):
    """The model registry over HTTP."""

    path = "/models"
    tags = ["registry"]

    @get(
        "/",
        summary="Every model version (the original /models shape), a page at a time",
        response_headers=NEXT_PAGE_HEADER,
    )
    async def list_models(
        self, queries: Pages, settings: Config, limit: Limit = None, cursor: Cursor = None
    ) -> Response[list[ModelSummary]]:
        """List all versions of all models; more pages when X-Next-Cursor is set."""
        return paged(*await queries.page_models(page_size(limit, settings), cursor))

    @get(
        "/{name:str}/versions",
        summary="One model's versions with metadata and metrics, a page at a time",
        response_headers=NEXT_PAGE_HEADER,
    )
    async def list_versions(
        self,
        queries: Pages,
        settings: Config,
        name: FromPath[str],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[ModelVersionView]]:
        """List a model's versions, oldest first."""
        size = page_size(limit, settings)
        return paged(*await queries.page_versions(names.check_model_name(name), size, cursor))

    @post("/{name:str}/versions", status_code=201, summary="Register a version")
    async def register(
        self,
        request: Request,
        bus: Bus,
        name: FromPath[str],
        data: JSONBody[RegisterVersionRequest],
    ) -> RegisterVersionResponse:
        """Copy an artifact into the store and record the registration."""
        cmd = RegisterModelVersion(
            model_name=names.check_model_name(name),
            model_version=data.model_version,
            source=data.artifact_path,
            tags=dict(data.tags),
            reason=data.reason,
            artifact_metadata=data.metadata,
            metadata=event_metadata(request),
        )
        result = await bus.handle(cmd)
        v = result.state.versions[data.model_version]
        return RegisterVersionResponse(
            model_name=name,
            model_version=v.model_version,
            status=v.status,
            sha256=v.sha256,
            artifact_uri=v.artifact_uri,
            created=result.changed,
        )

    @post("/{name:str}/versions/{version:str}/promote", status_code=200, summary="Promote")
    async def promote(
        self,
        request: Request,
        bus: Bus,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[PromoteRequest | None] = None,
    ) -> PromoteResponse:
        """Make a version prod, demoting the current prod (409 when a required gate is missing).

        ``{"force": true, "reason": "..."}`` overrides a required gate; both are recorded.
        """
        data = await strict_body(request, data, PromoteRequest)
        reason, force = (data.reason, data.force) if data else (None, False)
        result = await promote(bus, request, name, version, reason, force)
        previous = None
        for r in result.recorded:
            if isinstance(r.event, ModelVersionPromoted):
                previous = r.event.previous_prod
        # Four eyes: a promotion is a request until another key approves it.
        status = "prod" if result.state.prod == version else "requested"
        return PromoteResponse(
            model_name=name,
            model_version=version,
            status=status,
            previous_prod=previous,
            changed=result.changed,
        )

    @post("/{name:str}/rollback", status_code=200, summary="Roll back to the previous prod")
    async def rollback(
        self,
        request: Request,
        bus: Bus,
        name: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> RollbackResponse:
        """Restore the version that was prod before the current one."""
        result = await roll_back(bus, request, name, data.reason if data else None)
        event = result.recorded[0].event
        assert isinstance(event, ModelVersionRolledBack)
        return RollbackResponse(
            model_name=name, from_version=event.from_version, to_version=event.to_version
        )

    @get(
        "/{name:str}/history",
        summary="The audit trail, read from the event log, a page at a time",
        response_headers=NEXT_PAGE_HEADER,
    )
    async def history(
        self,
        queries: Pages,
        settings: Config,
        name: FromPath[str],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[HistoryEntry]]:
        """Every fact about the model, oldest first, with actor and time."""
        size = page_size(limit, settings)
        return paged(*await queries.page_history(names.check_model_name(name), size, cursor))
