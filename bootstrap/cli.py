"""What a CLI verb gets from the composition root: the command bus, the readers, the
operations on the log and streams, and the settings; never a raw engine or Redis client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bootstrap.platform import build_platform
from domain.bus import MessageBus
from domain.errors import DomainError, UnknownModel
from settings import Settings, get_settings
from storage.audit.service import AuditService
from storage.audit.transparency import TransparencyLog
from storage.console.queries import ConsoleQueries
from storage.gates.queries import GateQueries
from storage.jobs.queries import JobQueries
from storage.keys.queries import KeyQueries
from storage.operations import PlatformOperations
from storage.registry.artifacts import LocalArtifactStore
from storage.registry.queries import RegistryQueries


@dataclass(frozen=True, kw_only=True)
class CliServices:
    """A CLI process's dependencies, built once per verb."""

    settings: Settings
    bus: MessageBus
    queries: RegistryQueries
    job_queries: JobQueries
    gate_queries: GateQueries
    keys: KeyQueries
    audit: AuditService
    console: ConsoleQueries
    ops: PlatformOperations
    artifacts: LocalArtifactStore
    transparency: TransparencyLog


@contextlib.asynccontextmanager
async def cli_services(settings: Settings | None = None) -> AsyncIterator[CliServices]:
    """Connect (or start the servers), migrate, and release everything when the block ends."""
    p = await build_platform(settings or get_settings())
    try:
        yield CliServices(
            settings=p.settings,
            bus=p.bus,
            queries=p.queries,
            job_queries=p.job_queries,
            gate_queries=p.gate_queries,
            keys=p.keys,
            audit=p.audit,
            console=p.console,
            ops=p.ops,
            artifacts=p.artifacts,
            transparency=p.transparency,
        )
    except UnknownModel as exc:
        if exc.known is None:  # while connected: the message lists the registered names
            with contextlib.suppress(DomainError):
                exc.learn(await p.queries.model_names())
        raise
    finally:
        await p.aclose()


def log_public_key(settings: Settings | None = None) -> tuple[str, Path]:
    """The log's public key line and its key file (made on first use), with no server needed."""
    from storage.audit.checkpoints import load_signer

    s = settings or get_settings()
    path = s.transparency.signing_key_file or s.files.state_dir / "audit-signing.key"
    return load_signer(path, s.transparency.log_origin).verifier().vkey(), path
