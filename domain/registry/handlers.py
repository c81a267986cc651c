"""Registry use cases: register, promote, roll back, demote, tag, archive.

Each handler is ``handler(command, ports)``: the command says what and who, the ports
(``RegistryPorts``) are bound by the composition root.
"""

from __future__ import annotations

import asyncio

import msgspec

from domain import names
from domain.errors import ServiceUnavailable
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.registry.commands import (
    ApprovePromotion,
    ArchiveModelVersion,
    DemoteModelVersion,
    GetModel,
    PromoteModelVersion,
    RecordRegistration,
    RegisterModelVersion,
    RegistryCommand,
    RollbackModel,
    TagModelVersion,
)
from domain.registry.decisions import ModelState, decide
from domain.registry.ports import RegistryPorts
from domain.transactions import CommandResult, in_transaction
from events.base import EventMetadata
from events.registry import ArtifactMetadata


async def change_model(
    command: RegistryCommand, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> CommandResult:
    """Load the model, decide through the aggregate, save; retried on a lost race."""

    async def work(tx: UnitOfWork) -> CommandResult:
        state = await tx.models.load(command.model_name)
        events = decide(state, command)
        recorded = await tx.models.save(state, events, metadata) if events else []
        return CommandResult(state=state, recorded=recorded)

    return await in_transaction(uow, work, f"model {command.model_name!r}")


async def model_state(model_name: str, uow: UnitOfWorkFactory) -> ModelState:
    """A model's current state folded from its stream (for verbs that need its versions)."""
    async with uow() as tx:
        return await tx.models.load(model_name)


async def read_model(query: GetModel, ports: RegistryPorts) -> ModelState:
    """A model's current state (empty when unknown)."""
    return await model_state(query.model_name, ports.uow)


async def promote_model_version(
    cmd: PromoteModelVersion | ApprovePromotion, ports: RegistryPorts
) -> CommandResult:
    """Make a version prod (or, with four eyes, request or approve that); the previous prod is
    recorded in the same event.

    The model's gate policy is enforced by the aggregate: this passes it the candidate's finished
    gates and the clock's time, read in the same transaction as the promotion.
    """
    names.check_model_name(cmd.model_name)

    async def work(tx: UnitOfWork) -> CommandResult:
        state = await tx.models.load(cmd.model_name)
        known = {g.gate_id for g in cmd.gates}
        found = await tx.gates.outcomes(cmd.model_name, cmd.model_version)
        gates = (*cmd.gates, *(g for g in found if g.gate_id not in known))
        now = cmd.now or ports.clock.now()
        events = decide(state, msgspec.structs.replace(cmd, gates=gates, now=now))
        recorded = await tx.models.save(state, events, cmd.metadata) if events else []
        return CommandResult(state=state, recorded=recorded)

    return await in_transaction(ports.uow, work, f"model {cmd.model_name!r}")


async def change_version(
    cmd: RollbackModel | DemoteModelVersion | TagModelVersion | ArchiveModelVersion,
    ports: RegistryPorts,
) -> CommandResult:
    """Roll back, demote, tag or archive: the aggregate decides, one transaction saves."""
    return await change_model(cmd, cmd.metadata, ports.uow)


async def register_model_version(cmd: RegisterModelVersion, ports: RegistryPorts) -> CommandResult:
    """Validate an artifact file, copy it into the store and record the registration.

    File work runs in threads so the event loop keeps serving. Registrations of one version
    are serialised by a lock, so a losing concurrent request can never overwrite the file
    whose sha256 the winner recorded.
    """
    name, version, store = cmd.model_name, cmd.model_version, ports.artifacts
    names.check_model_name(name)
    names.check_version(version)
    names.check_tags(cmd.tags)
    names.check_reason(cmd.reason)
    path = await asyncio.to_thread(store.resolve_source, cmd.source)
    sha256, size = await asyncio.to_thread(store.digest, path)
    async with ports.lock(name, version):
        async with ports.uow() as tx:
            existing = (await tx.models.load(name)).versions.get(version)
        if existing is not None:
            # Identical: an idempotent success; different: 409. The stored file is never touched.
            record = _record(cmd, existing.artifact_uri, sha256, size, None)
            return await change_model(record, cmd.metadata, ports.uow)
        meta = await asyncio.to_thread(ports.inspector.inspect, path, cmd.artifact_metadata)
        names.check_text(msgspec.to_builtins(meta), "metadata")
        try:
            stored = await asyncio.to_thread(store.put, path, name, version, sha256)
            await asyncio.to_thread(store.write_metadata, name, version, meta)
            record = _record(cmd, stored.uri, sha256, size, meta)
            return await change_model(record, cmd.metadata, ports.uow)
        except BaseException:
            # Remove the copy only when its commit is known to have failed: a commit whose reply
            # was lost may still have landed, and then the files belong to that version.
            if await _commit_failed(ports.uow, name, version):
                await asyncio.to_thread(store.discard, name, version)
            raise


async def _commit_failed(uow: UnitOfWorkFactory, name: str, version: str) -> bool:
    """Whether the version is known not to be registered (False when that cannot be known)."""
    try:
        async with uow() as tx:
            v = (await tx.models.load(name)).versions.get(version)
    except ServiceUnavailable:  # unknown: keep the files; the next registration replaces them
        return False
    return v is None


def _record(
    cmd: RegisterModelVersion, uri: str, sha256: str, size: int, meta: ArtifactMetadata | None
) -> RecordRegistration:
    return RecordRegistration(
        model_name=cmd.model_name,
        model_version=cmd.model_version,
        artifact_uri=uri,
        sha256=sha256,
        size_bytes=size,
        metadata=meta or ArtifactMetadata(),
        tags=cmd.tags,
        reason=cmd.reason,
    )


HANDLERS = {
    RegisterModelVersion: register_model_version,
    PromoteModelVersion: promote_model_version,
    ApprovePromotion: promote_model_version,
    RollbackModel: change_version,
    DemoteModelVersion: change_version,
    TagModelVersion: change_version,
    ArchiveModelVersion: change_version,
    GetModel: read_model,
}
"""Which handler answers each registry command (the message bus routes by command type)."""
