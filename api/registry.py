"""Registry endpoints: list, register, promote, roll back, history."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.schemas import (
    PromoteResponse,
    ReasonRequest,
    RegisterVersionRequest,
    RegisterVersionResponse,
    RollbackResponse,
)
from bootstrap import Platform
from domain import names
from domain.commands import PromoteModelVersion, RollbackModel
from domain.handlers import handle_registry_command, register_model_version
from domain.views import HistoryEntry, ModelSummary, ModelVersionView
from events.registry import ModelVersionPromoted, ModelVersionRolledBack

Deps = NamedDependency[Platform]


class RegistryController(Controller):
    """The model registry over HTTP."""

    path = "/models"
    tags = ["registry"]

    @get("/", summary="Every model version (the original /models shape)")
    async def list_models(self, platform: Deps) -> list[ModelSummary]:
        """List all versions of all models."""
        return await platform.queries.list_models()

    @get("/{name:str}/versions", summary="One model's versions with metadata and metrics")
    async def list_versions(self, platform: Deps, name: FromPath[str]) -> list[ModelVersionView]:
        """List a model's versions."""
        return await platform.queries.list_versions(names.check_model_name(name))

    @post("/{name:str}/versions", status_code=201, summary="Register a version")
    async def register(
        self,
        request: Request,
        platform: Deps,
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
            metadata=event_metadata(request, platform.settings),
            repo=platform.repo,
            store=platform.artifacts,
            inspector=platform.inspector,
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
        platform: Deps,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> PromoteResponse:
        """Make a version prod, demoting the current prod."""
        meta = event_metadata(request, platform.settings)
        cmd = PromoteModelVersion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            reason=data.reason if data else None,
        )
        result = await handle_registry_command(cmd, meta, platform.repo)
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
        platform: Deps,
        name: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> RollbackResponse:
        """Restore the version that was prod before the current one."""
        meta = event_metadata(request, platform.settings)
        cmd = RollbackModel(
            model_name=names.check_model_name(name), reason=data.reason if data else None
        )
        result = await handle_registry_command(cmd, meta, platform.repo)
        event = result.recorded[0].event
        assert isinstance(event, ModelVersionRolledBack)
        return RollbackResponse(
            model_name=name, from_version=event.from_version, to_version=event.to_version
        )

    @get("/{name:str}/history", summary="The audit trail, read from the event log")
    async def history(self, platform: Deps, name: FromPath[str]) -> list[HistoryEntry]:
        """Every fact about the model, oldest first, with actor and time."""
        return await platform.queries.history(names.check_model_name(name))
