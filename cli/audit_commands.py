"""Audit verbs of the CLI: replay, anchor, audit, history --at, reproduce, asyncapi."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import msgspec

from cli.output import console, fail
from cli.registry_commands import Values, need, platform
from cli.registry_commands import history as plain_history
from domain.audit.reports import Anchor, AuditReport, TrailEntry, TrailFilter, parse_time
from domain.errors import InvalidInput
from events.base import EventMetadata

DISCREPANCY = 4  # the exit code of a failed audit, as of a broken chain


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The audit verbs' grammar."""
    p = sub.add_parser("replay", help="print the audit trail from the log (or a stream)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from", dest="from_position", type=int, metavar="POSITION")
    start.add_argument("--since", metavar="TIME", help="ISO 8601, e.g. 2026-11-26T14:00:00Z")
    p.add_argument("--model", metavar="NAME")
    p.add_argument("--type", dest="event_type", metavar="EVENT_TYPE")
    p.add_argument("--actor", metavar="NAME")
    p.add_argument("--json", action="store_true", help="JSON Lines")
    p.add_argument("--source", choices=("log", "stream"), default="log")
    p = sub.add_parser("relay", help="publish pending events to Redis once")
    p.add_argument(
        "--rebuild",
        metavar="STREAM",
        help="first recreate STREAM from the log, its consumer groups at their positions",
    )
    sub.add_parser("anchor", help="print the log's head (position, hash, time) as one line")
    p = sub.add_parser("audit", help="check chain, projections and streams against the log")
    p.add_argument("--anchor", metavar="LINE", help="a line printed earlier by `just anchor`")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("reproduce", help="retrain a version from its recorded recipe")
    p.add_argument("model_name")
    p.add_argument("model_version")
    p = sub.add_parser("asyncapi", help="write the AsyncAPI document of the event streams")
    p.add_argument("--out", default="docs/asyncapi.json")


def trail_filter(args: argparse.Namespace) -> TrailFilter:
    """The replay filter from the flags."""
    if args.from_position is not None and args.from_position < 1:
        raise InvalidInput(f"--from must be a position >= 1, got {args.from_position}")
    f = TrailFilter(
        after=(args.from_position - 1) if args.from_position else 0,
        since=parse_time(args.since, "--since") if args.since else None,
        model=args.model,
        event_type=args.event_type,
        actor=args.actor,
    )
    f.check()
    return f


def _line(e: TrailEntry) -> str:
    what = " ".join(x for x in (e.model_name, e.model_version) if x) or "-"
    return (
        f"{e.position:>8}  {e.recorded_at.isoformat(timespec='milliseconds')}  {e.actor:<18} "
        f"{e.event_type:<24} {what:<28} reason={e.reason or '-'}  "
        f"correlation={e.correlation_id}  cause={e.causation_id or '-'}"
    )


async def replay(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Print the trail (plain or JSON Lines); from a stream, report entries that differ."""
    try:
        return await _replay(args)
    except BrokenPipeError:
        # The reader stopped early (`just replay | head`): not an error; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


async def _replay(args: argparse.Namespace) -> int:
    f = trail_filter(args)
    out, encode = sys.stdout, msgspec.json.Encoder().encode
    shown, problems = 0, []
    if not args.json:
        out.write(f"{'position':>8}  {'time':<29}  {'actor':<18} {'event':<24} model version\n")
    async with platform() as p:
        if args.source == "log":
            async for chunk in p.audit.trail(f):
                out.write(
                    "".join((encode(e).decode() if args.json else _line(e)) + "\n" for e in chunk)
                )
                shown += len(chunk)
        else:
            async for entry, problem, position in p.audit.stream_trail(f):
                if problem:
                    problems.append((position, problem))
                if entry is not None:
                    out.write((encode(entry).decode() if args.json else _line(entry)) + "\n")
                    shown += 1
    out.flush()
    for _, problem in problems:
        print(f"differs: {problem}", file=sys.stderr)
    if problems:
        return fail(
            f"{len(problems)} stream entries differ from the log; first at position "
            f"{min(pos for pos, _ in problems)}",
            DISCREPANCY,
        )
    print(f"{shown} events", file=sys.stderr)
    return 0


async def relay(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Publish pending events once; with --rebuild STREAM, recreate that stream first."""
    async with platform() as p:
        if args.rebuild:
            r = await p.ops.rebuild_stream(args.rebuild)
            groups = ", ".join(f"{g} at {n}" for g, n in r["groups"].items()) or "none"
            console.print(
                f"rebuilt {r['stream']}: {r['entries']} entries from the log (positions "
                f"{r['from_position']} to {r['to_position']}); consumer groups: {groups}",
                highlight=False,
            )
            return 0
        published = await p.ops.publish_pending()
    if published is None:
        return fail("another relay is leading (an API process); it publishes the events", 0)
    console.print(f"published {published} events")
    return 0


async def anchor(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Print the head of the log as one line to keep outside the database."""
    async with platform() as p:
        head = await p.audit.head()
    if head is None:
        return fail("the event log is empty; there is nothing to anchor yet")
    print(head.line())
    return 0


def print_report(report: AuditReport) -> None:
    """The audit report for a terminal."""
    for check, outcome in report.checks.items():
        console.print(f"{check:<13} {outcome}", highlight=False)
    for f in report.findings[:50]:
        where = f"position {f.position}" if f.position is not None else "no position"
        console.print(f"[red]{f.check}[/] at {where}: {f.problem}", highlight=False)
    if len(report.findings) > 50:
        console.print(f"... and {len(report.findings) - 50} more")


async def audit(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Every check; exit 0 when clean and 4 naming the first bad position otherwise."""
    given = Anchor.parse(args.anchor) if args.anchor else None
    async with platform() as p:
        report = await p.audit.audit(anchor=given)
        await p.console.record_audit(report, meta.actor, "cli")  # the console shows the latest
    if args.json:
        body = msgspec.to_builtins(report) | {
            "ok": report.ok,
            "first_bad": report.first_bad_position,
        }
        print(msgspec.json.encode(body).decode())
    else:
        print_report(report)
    if report.ok:
        console.print(
            f"audit clean: {report.events} events up to position "
            f"{report.last_position} ({report.seconds} s)",
            highlight=False,
        )
        return 0
    first = report.first_bad_position
    where = f"first bad position {first}" if first is not None else "see above"
    return fail(f"audit found {len(report.findings)} discrepancies; {where}", DISCREPANCY)


async def history(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """`history NAME` (the trail) or `history NAME --at TIME` (the model at that moment)."""
    if not getattr(args, "at", None):
        return await plain_history(args, values, meta)
    (name,) = need(values, "model_name")
    at = parse_time(args.at, "--at")
    async with platform() as p:
        view = await p.audit.model_at(name, at)
    console.print(
        f"{name} at {at.isoformat()} (folded from the log up to position {view.as_of_position})",
        highlight=False,
    )
    since = f" since {view.prod_since.isoformat()}" if view.prod_since else ""
    console.print(f"prod: {view.prod_version or 'none'}{since}", highlight=False)
    for v in view.versions:
        console.print(
            f"  {v.model_version:<12} {v.status:<9} registered "
            f"{v.registered_at.isoformat(timespec='seconds')} by {v.registered_by} "
            f"sha256 {v.sha256[:12]}",
            highlight=False,
        )
    return 0


async def reproduce(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Retrain from the registration's recipe and compare the sha256 with the registered one."""
    from cli.reproduce import retrain

    async with platform() as p:
        version = await p.queries.get_version(args.model_name, args.model_version)
        settings = p.settings
    what = f"{args.model_name} {args.model_version}"
    sha = await retrain(version.metadata, what, settings)
    if sha == version.sha256:
        console.print(f"reproduced {what}: sha256 {sha} equals the registered one", highlight=False)
        return 0
    return fail(
        f"{what} did not reproduce: sha256 {sha} != registered {version.sha256}", DISCREPANCY
    )


async def asyncapi(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Write the AsyncAPI document (it needs no server)."""
    from events.asyncapi import document_json

    def write(out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(document_json())

    await asyncio.to_thread(write, Path(args.out))
    console.print(f"wrote {args.out}", highlight=False)
    return 0


COMMANDS = {
    "relay": relay,
    "replay": replay,
    "anchor": anchor,
    "audit": audit,
    "reproduce": reproduce,
    "asyncapi": asyncapi,
}
