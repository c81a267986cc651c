"""Handlers: run a command against the ports. Their parameters are their dependencies."""

from __future__ import annotations

import asyncio
import random

import msgspec

from domain import names
from domain.commands import RegisterModelVersion, RegistryCommand
from domain.errors import ConcurrencyConflict, Conflict
from domain.ports import ArtifactInspector, ArtifactStore, ModelRepository
from domain.registry import ModelState, decide
from events.base import EventMetadata, RecordedEvent
from events.registry import ArtifactMetadata

MAX_ATTEMPTS = 200


class CommandResult(msgspec.Struct, kw_only=True):
    """What a command did: the events it recorded (none for an idempotent repeat)."""

    state: ModelState
    recorded: list[RecordedEvent]

    @property
    def changed(self) -> bool:
        """False when the command was a no-op repeat."""
        return bool(self.recorded)


async def conflict_backoff(attempt: int) -> None:
    """After losing an optimistic-concurrency race: a short random pause so a crowd spreads out."""
    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))


async def handle_registry_command(
    command: RegistryCommand, metadata: EventMetadata, repo: ModelRepository
) -> CommandResult:
    """Decide and save, retrying on optimistic-concurrency conflicts."""
    for attempt in range(MAX_ATTEMPTS):
        state = await repo.load(command.model_name)
        events = decide(state, command)
        if not events:
            return CommandResult(state=state, recorded=[])
        try:
            recorded = await repo.save(state, events, metadata)
        except ConcurrencyConflict:
            await conflict_backoff(attempt)
            continue
        return CommandResult(state=state, recorded=recorded)
    raise Conflict(f"model {command.model_name!r} is under heavy concurrent change; retry")


async def register_model_version(
    *,
    model_name: str,
    model_version: str,
    source: str,
    tags: dict[str, str],
    reason: str | None,
    metadata_override: ArtifactMetadata | None,
    metadata: EventMetadata,
    repo: ModelRepository,
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
    async with repo.registration_lock(model_name, model_version):
        state = await repo.load(model_name)
        existing = state.versions.get(model_version)
        if existing is not None:
            # Identical: an idempotent success; different: 409. The stored file is never touched.
            cmd = _command(
                model_name, model_version, existing.artifact_uri, sha256, size, tags, reason, None
            )
            return await handle_registry_command(cmd, metadata, repo)
        artifact_meta = await asyncio.to_thread(inspector.inspect, path, metadata_override)
        names.check_text(msgspec.to_builtins(artifact_meta), "metadata")
        stored = await asyncio.to_thread(store.put, path, model_name, model_version, sha256)
        try:
            await asyncio.to_thread(store.write_metadata, model_name, model_version, artifact_meta)
            cmd = _command(
                model_name, model_version, stored.uri, sha256, size, tags, reason, artifact_meta
            )
            return await handle_registry_command(cmd, metadata, repo)
        except BaseException:
            # Nothing references the copy: remove it rather than leave an orphan behind.
            await asyncio.to_thread(store.discard, model_name, model_version)
            raise


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
