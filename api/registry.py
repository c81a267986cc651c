"""Registry endpoints: list, register, promote, roll back, history."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.deps import Port
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
from domain.paging.ports import RegistryPages
from domain.ports import (
    ArtifactInspector,
    ArtifactStore,
    Clock,
    RegistrationLock,
    RegistryReader,
    UnitOfWorkFactory,
)
from domain.registry.commands import PromoteModelVersion, RollbackModel
from domain.registry.handlers import promote_model_version, register_model_version, rollback_model
from domain.registry.views import HistoryEntry, ModelSummary, ModelVersionView
from events.registry import ModelVersionPromoted, ModelVersionRolledBack
from settings import Settings

Queries = Port[RegistryReader]
Pages = Port[RegistryPages]


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
        self, queries: Pages, settings: Port[Settings], limit: Limit = None, cursor: Cursor = None
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
        settings: Port[Settings],
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
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        registration_lock: Port[RegistrationLock],
        artifacts: Port[ArtifactStore],
        inspector: Port[ArtifactInspector],
        name: FromPath[str],
        data: JSONBody[RegisterVersionRequest],
    ) -> RegisterVersionResponse:
        """Copy an artifact into the store and record the registration."""
        result = await register_model_version(
            model_name=names.check_model_name(name),
            model_version=data.model_version,
            source=data.artifact_path,
            tags=dict(data.tags),
            reason=data.reason,
            metadata_override=data.metadata,
            metadata=event_metadata(request, settings),
            uow=uow,
            lock=registration_lock,
            store=artifacts,
            inspector=inspector,
        )
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
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        clock: Port[Clock],
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[PromoteRequest | None] = None,
    ) -> PromoteResponse:
        """Make a version prod, demoting the current prod (409 when a required gate is missing).

        ``{"force": true, "reason": "..."}`` overrides a required gate; both are recorded.
        """
        meta = event_metadata(request, settings)
        cmd = PromoteModelVersion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            reason=data.reason if data else None,
            force=data.force if data else False,
        )
        result = await promote_model_version(cmd, meta, uow, clock)
        previous = None
        for r in result.recorded:
            if isinstance(r.event, ModelVersionPromoted):
                previous = r.event.previous_prod
        return PromoteResponse(
            model_name=name,
            model_version=version,
            status="prod",
            previous_prod=previous,
            changed=result.changed,
        )

    @post("/{name:str}/rollback", status_code=200, summary="Roll back to the previous prod")
    async def rollback(
        self,
        request: Request,
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        name: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> RollbackResponse:
        """Restore the version that was prod before the current one."""
        meta = event_metadata(request, settings)
        cmd = RollbackModel(
            model_name=names.check_model_name(name), reason=data.reason if data else None
        )
        result = await rollback_model(cmd, meta, uow)
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
        settings: Port[Settings],
        name: FromPath[str],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[HistoryEntry]]:
        """Every fact about the model, oldest first, with actor and time."""
        size = page_size(limit, settings)
        return paged(*await queries.page_history(names.check_model_name(name), size, cursor))
