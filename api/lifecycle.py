"""Version lifecycle endpoints: demote, tag and archive (promote and rollback live in registry)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post, put
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.deps import Port
from api.schemas import Reason, ReasonRequest
from domain import names
from domain.ports import RegistryReader, UnitOfWorkFactory
from domain.registry.commands import ArchiveModelVersion, DemoteModelVersion, TagModelVersion
from domain.registry.handlers import archive_model_version, demote_model_version, tag_model_version
from domain.registry.views import ModelVersionView
from settings import Settings


class TagRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tags to set (merged into the version's tags) and an optional reason."""

    tags: dict[str, str]
    reason: Reason | None = None


class LifecycleController(Controller):
    """Demote, tag and archive model versions."""

    path = "/models/{name:str}/versions/{version:str}"
    tags = ["registry"]

    @post("/demote", status_code=200, summary="Take the prod version out of prod")
    async def demote(
        self,
        request: Request,
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        queries: Port[RegistryReader],
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> ModelVersionView:
        """The model has no prod afterwards; 409 when the version is not prod."""
        cmd = DemoteModelVersion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            reason=data.reason if data else None,
        )
        await demote_model_version(cmd, event_metadata(request, settings), uow)
        return await queries.get_version(name, version)

    @put("/tags", status_code=200, summary="Set tags on a version")
    async def tag(
        self,
        request: Request,
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        queries: Port[RegistryReader],
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[TagRequest],
    ) -> ModelVersionView:
        """Tags given here replace those keys; other tags stay."""
        cmd = TagModelVersion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            tags=dict(data.tags),
            reason=data.reason,
        )
        await tag_model_version(cmd, event_metadata(request, settings), uow)
        return await queries.get_version(name, version)

    @post("/archive", status_code=200, summary="Retire a version")
    async def archive(
        self,
        request: Request,
        settings: Port[Settings],
        uow: Port[UnitOfWorkFactory],
        queries: Port[RegistryReader],
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> ModelVersionView:
        """An archived version can no longer be promoted; 409 for the prod version."""
        cmd = ArchiveModelVersion(
            model_name=names.check_model_name(name),
            model_version=names.check_version(version),
            reason=data.reason if data else None,
        )
        await archive_model_version(cmd, event_metadata(request, settings), uow)
        return await queries.get_version(name, version)
