"""Registry verbs of the CLI, each a thin call into one handler."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog

from bootstrap import database_url, redis_url
from bootstrap.cli import CliServices, cli_services
from cli.gate_output import request_line
from cli.output import console, fail, models_table, print_history
from cli.usage import UsageError
from domain.errors import InvalidInput, ServiceUnavailable
from domain.registry.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RegisterModelVersion,
    RollbackModel,
    TagModelVersion,
)
from events.base import EventMetadata
from events.registry import ModelVersionPromoted, ModelVersionRolledBack, PromotionRequested

log = structlog.get_logger("cli")
Values = dict[str, str | None]


@asynccontextmanager
async def platform() -> AsyncIterator[CliServices]:
    """What a verb uses, on a migrated database; closed on exit."""
    async with cli_services() as services:
        yield services


def need(values: Values, *keys: str) -> list[str]:
    """The required positional values, or a usage error naming the missing one."""
    missing = [k for k in keys if not values.get(k)]
    if missing:
        raise UsageError("missing " + ", ".join(missing).upper())
    return [values[k] for k in keys]  # type: ignore[misc]


async def _publish(p: CliServices) -> None:
    """Best effort: push new events to Redis now rather than when an API process next runs."""
    try:
        await p.ops.publish_pending()
    except ServiceUnavailable as exc:
        log.warning("relay_deferred", error=str(exc))


async def send(command: Any) -> Any:
    """Send one command through the bus, publish its events now, and return its result."""
    async with platform() as p:
        result = await p.bus.handle(command)
        await _publish(p)
    return result


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--tag {pair!r} must look like KEY=VALUE")
        tags[key] = value
    return tags


async def register(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Register NAME VERSION ARTIFACT."""
    name, version, path = need(values, "model_name", "model_version", "artifact_path")
    cmd = RegisterModelVersion(
        model_name=name,
        model_version=version,
        source=path,
        tags=_tags(args.tag),
        reason=args.reason,
        metadata=meta,
    )
    result = await send(cmd)
    v = result.state.versions[version]
    verb = "registered" if result.changed else "already registered (identical sha256)"
    console.print(f"{verb} {name} {version} \\[{v.status}] sha256={v.sha256[:12]} by {meta.actor}")
    return 0


async def promote(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Promote NAME VERSION to prod."""
    name, version = need(values, "model_name", "model_version")
    force = getattr(args, "force", False)
    cmd = PromoteModelVersion(
        model_name=name, model_version=version, reason=args.reason, force=force, metadata=meta
    )
    result = await send(cmd)
    if not result.changed:
        pending = result.state.requests.get(version)
        if result.state.prod != version and pending is not None:
            console.print(f"{name} {version} is already requested by {pending.requested_by}")
            return 0
        console.print(f"{name} {version} is already prod")
        return 0
    e = result.recorded[0].event
    if isinstance(e, PromotionRequested):  # four eyes: another key approves it
        console.print(request_line(e, meta.actor), highlight=False)
        return 0
    assert isinstance(e, ModelVersionPromoted)
    prev = f" (demoted {e.previous_prod})" if e.previous_prod else ""
    how = f", forced by {meta.actor}: {e.force_reason}" if e.forced else ""
    gate = f", cleared by gate {e.gate_id}" if e.gate_id else ""
    console.print(f"promoted {name} {version} to prod{prev}{gate}{how}", highlight=False)
    return 0


async def rollback(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Roll NAME back to its previous prod."""
    (name,) = need(values, "model_name")
    result = await send(RollbackModel(model_name=name, reason=args.reason, metadata=meta))
    event = result.recorded[0].event
    assert isinstance(event, ModelVersionRolledBack)
    console.print(f"rolled back {name}: prod {event.from_version} -> {event.to_version}")
    return 0


async def demote(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Take NAME VERSION out of prod (the model then has no prod)."""
    name, version = need(values, "model_name", "model_version")
    cmd = DemoteModelVersion(
        model_name=name, model_version=version, reason=args.reason, metadata=meta
    )
    await send(cmd)
    console.print(f"demoted {name} {version}: {name} has no prod version now")
    return 0


async def tag(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Set KEY=VALUE tags on NAME VERSION (an empty VALUE removes the key)."""
    name, version = need(values, "model_name", "model_version")
    tags = _tags(args.tags)
    cmd = TagModelVersion(
        model_name=name, model_version=version, tags=tags, reason=args.reason, metadata=meta
    )
    result = await send(cmd)
    now = result.state.versions[version].tags
    console.print(f"tagged {name} {version}: " + ", ".join(f"{k}={v}" for k, v in now.items()))
    return 0


async def archive(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Retire NAME VERSION so it can no longer be promoted."""
    name, version = need(values, "model_name", "model_version")
    cmd = ArchiveModelVersion(
        model_name=name, model_version=version, reason=args.reason, metadata=meta
    )
    result = await send(cmd)
    console.print(f"archived {name} {version}" + ("" if result.changed else " (already archived)"))
    return 0


async def list_models(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """List all models, or one model's versions."""
    name = values.get("model_name")
    async with platform() as p:
        if name:
            rows = await p.queries.list_versions(name)
        else:
            # Full version rows, model by model, so sha256 and accuracy are filled for all.
            names = dict.fromkeys(r.model_name for r in await p.queries.list_models())
            rows = [v for n in names for v in await p.queries.list_versions(n)]
    if not rows:
        console.print("no models registered yet")
        return 0
    console.print(models_table(rows, f"versions of {name}" if name else "models"))
    return 0


async def history(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Print a model's audit trail."""
    (name,) = need(values, "model_name")
    async with platform() as p:
        rows = await p.queries.history(name)
        prod = await p.queries.prod_version(name)
    order = "oldest first" if args.reverse else "newest first"
    rows = rows if args.reverse else rows[::-1]
    print_history(rows, f"history of {name} ({order}; --reverse for the other way)", args.wide)
    console.print(f"current prod: {prod or 'none'}")
    return 0


async def migrate(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Upgrade the schema to head."""
    async with platform():
        pass
    console.print("database schema is at head")
    return 0


async def verify(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Verify the hash chain; exit 4 and list the breaks if it fails."""
    async with platform() as p:
        report, anchor = await p.ops.verify_log()
    if report.ok and not anchor:
        console.print(
            f"event log intact: {report.checked} events, last position {report.last_position}"
        )
        return 0
    for b in report.breaks:
        console.print(f"[red]chain broken at position {b.position}[/] ({b.stream_id}): {b.problem}")
    for f in anchor:
        console.print(f"[red]{f.check} at position {f.position}[/]: {f.problem}")
    first = report.breaks[0].position if report.breaks else anchor[0].position
    return fail(f"event log integrity check failed at position {first}", 4)


async def rebuild(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Drop and replay the projections."""
    async with platform() as p:
        count = await p.ops.rebuild_projections()
    console.print(f"rebuilt projections from the log ({count} models)")
    return 0


async def servers(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Start (or find) the servers and show where they are."""
    async with platform():
        pass
    console.print(
        f"postgresql: {masked_url(database_url())}\nredis:      {masked_url(redis_url())}",
        highlight=False,
    )
    return 0


def masked_url(url: str) -> str:
    """A server URL with its password replaced by ***, so it may be shown and logged."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
