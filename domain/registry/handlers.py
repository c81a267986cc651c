"""Registry use cases: register, promote, roll back, demote, tag, archive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec

from domain import names
from domain.errors import ServiceUnavailable
from domain.ports import (
    ArtifactInspector,
    ArtifactStore,
    Clock,
    RegistrationLock,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.registry.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RegisterModelVersion,
    RegistryCommand,
    RollbackModel,
    TagModelVersion,
)
from domain.registry.decisions import ModelState, decide
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


async def promote_model_version(
    cmd: PromoteModelVersion,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    clock: Clock | None = None,
) -> CommandResult:
    """Make a version prod; the previous prod is recorded in the same event.

    The model's gate policy is enforced by the aggregate: this passes it the candidate's finished
    gates and the time, read in the same transaction as the promotion.
    """
    names.check_model_name(cmd.model_name)

    async def work(tx: UnitOfWork) -> CommandResult:
        state = await tx.models.load(cmd.model_name)
        known = {g.gate_id for g in cmd.gates}
        found = await tx.gates.outcomes(cmd.model_name, cmd.model_version)
        gates = (*cmd.gates, *(g for g in found if g.gate_id not in known))
        now = cmd.now or (clock.now() if clock is not None else datetime.now(UTC))
        events = decide(state, msgspec.structs.replace(cmd, gates=gates, now=now))
        recorded = await tx.models.save(state, events, metadata) if events else []
        return CommandResult(state=state, recorded=recorded)

    return await in_transaction(uow, work, f"model {cmd.model_name!r}")


async def rollback_model(
    cmd: RollbackModel, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> CommandResult:
    """Restore the version that was prod before the current one."""
    return await change_model(cmd, metadata, uow)


async def demote_model_version(
    cmd: DemoteModelVersion, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> CommandResult:
    """Take a version out of prod (the model then has no prod)."""
    return await change_model(cmd, metadata, uow)


async def tag_model_version(
    cmd: TagModelVersion, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> CommandResult:
    """Set tags on a version."""
    return await change_model(cmd, metadata, uow)


async def archive_model_version(
    cmd: ArchiveModelVersion, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> CommandResult:
    """Retire a version that is not prod; it can no longer be promoted."""
    return await change_model(cmd, metadata, uow)


async def register_model_version(
    *,
    model_name: str,
    model_version: str,
    source: str,
    tags: dict[str, str],
    reason: str | None,
    metadata_override: ArtifactMetadata | None,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    lock: RegistrationLock,
    store: ArtifactStore,
    inspector: ArtifactInspector,
) -> CommandResult:
    """Validate an artifact file, copy it into the store and record the registration.

    File work runs in threads so the event loop keeps serving. Registrations of one version
    are serialised by a lock, so a losing concurrent request can never overwrite the file
    whose sha256 the winner recorded.
    """
    names.check_model_name(model_name)
    names.check_version(model_version)
    names.check_tags(tags)
    names.check_reason(reason)
    path = await asyncio.to_thread(store.resolve_source, source)
    sha256, size = await asyncio.to_thread(store.digest, path)
    async with lock(model_name, model_version):
        async with uow() as tx:
            existing = (await tx.models.load(model_name)).versions.get(model_version)
        if existing is not None:
            # Identical: an idempotent success; different: 409. The stored file is never touched.
            cmd = _command(
                model_name, model_version, existing.artifact_uri, sha256, size, tags, reason, None
            )
            return await change_model(cmd, metadata, uow)
        artifact_meta = await asyncio.to_thread(inspector.inspect, path, metadata_override)
        names.check_text(msgspec.to_builtins(artifact_meta), "metadata")
        try:
            stored = await asyncio.to_thread(store.put, path, model_name, model_version, sha256)
            await asyncio.to_thread(store.write_metadata, model_name, model_version, artifact_meta)
            cmd = _command(
                model_name, model_version, stored.uri, sha256, size, tags, reason, artifact_meta
            )
            return await change_model(cmd, metadata, uow)
        except BaseException:
            # Remove the copy only when its commit is known to have failed: a commit whose reply
            # was lost may still have landed, and then the files belong to that version.
            if await _commit_failed(uow, model_name, model_version):
                await asyncio.to_thread(store.discard, model_name, model_version)
            raise


async def _commit_failed(uow: UnitOfWorkFactory, name: str, version: str) -> bool:
    """Whether the version is known not to be registered (False when that cannot be known)."""
    try:
        async with uow() as tx:
            v = (await tx.models.load(name)).versions.get(version)
    except ServiceUnavailable:  # unknown: keep the files; the next registration replaces them
        return False
    return v is None


def _command(
    name: str,
    version: str,
    uri: str,
    sha256: str,
    size: int,
    tags: dict[str, str],
    reason: str | None,
    meta: ArtifactMetadata | None,
) -> RegisterModelVersion:
    return RegisterModelVersion(
        model_name=name,
        model_version=version,
        artifact_uri=uri,
        sha256=sha256,
        size_bytes=size,
        metadata=meta or ArtifactMetadata(),
        tags=tags,
        reason=reason,
    )
