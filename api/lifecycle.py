"""Version lifecycle endpoints: demote, tag and archive (promote and rollback live in registry).

Each route builds its command; ``_change`` sends it and answers with the version's new view.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post, put
from litestar.params import FromPath, JSONBody

from api.auth import event_metadata
from api.deps import Bus, Port
from api.schemas import Reason, ReasonRequest
from domain import names
from domain.bus import MessageBus
from domain.registry.commands import ArchiveModelVersion, DemoteModelVersion, TagModelVersion
from domain.registry.ports import RegistryReader
from domain.registry.views import ModelVersionView

Queries = Port[RegistryReader]


class TagRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tags to set (merged into the version's tags) and an optional reason."""

    tags: dict[str, str]
    reason: Reason | None = None


async def _change(
    bus: MessageBus,
    queries: RegistryReader,
    request: Request,
    kind: type[DemoteModelVersion | TagModelVersion | ArchiveModelVersion],
    name: str,
    version: str,
    **fields,
) -> ModelVersionView:
    """Send one lifecycle command for a version; the version as it is afterwards."""
    name, version = names.check_model_name(name), names.check_version(version)
    cmd = kind(model_name=name, model_version=version, metadata=event_metadata(request), **fields)
    await bus.handle(cmd)
    return await queries.get_version(name, version)


class LifecycleController(Controller):
    """Demote, tag and archive model versions."""

    path = "/models/{name:str}/versions/{version:str}"
    tags = ["registry"]

    @post("/demote", status_code=200, summary="Take the prod version out of prod")
    async def demote(
        self,
        request: Request,
        bus: Bus,
        queries: Queries,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> ModelVersionView:
        """The model has no prod afterwards; 409 when the version is not prod."""
        reason = data.reason if data else None
        return await _change(
            bus, queries, request, DemoteModelVersion, name, version, reason=reason
        )

    @put("/tags", status_code=200, summary="Set tags on a version")
    async def tag(
        self,
        request: Request,
        bus: Bus,
        queries: Queries,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[TagRequest],
    ) -> ModelVersionView:
        """Tags given here replace those keys; other tags stay."""
        fields = {"tags": dict(data.tags), "reason": data.reason}
        return await _change(bus, queries, request, TagModelVersion, name, version, **fields)

    @post("/archive", status_code=200, summary="Retire a version")
    async def archive(
        self,
        request: Request,
        bus: Bus,
        queries: Queries,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[ReasonRequest | None] = None,
    ) -> ModelVersionView:
        """An archived version can no longer be promoted; 409 for the prod version."""
        reason = data.reason if data else None
        return await _change(
            bus, queries, request, ArchiveModelVersion, name, version, reason=reason
        )
