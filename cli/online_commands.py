"""Online verbs: shadow (mirror prod's traffic to a candidate and judge it) and canary (route a
growing share to a candidate, step by step, promoted or rolled back by the online checks)."""

from __future__ import annotations

import argparse
import asyncio
import re

from rich.live import Live
from rich.table import Table

from cli.output import console
from cli.registry_commands import Values, _publish, platform
from cli.usage import UsageError
from domain.online.commands import AbortCanary, GetOnline, StartCanary, StartShadow, StopShadow
from domain.online.judge import describe
from domain.online.state import OnlineState
from events.base import EventMetadata
from events.online import Margins, OnlineFigures

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str) -> float:
    """'90', '90s', '15m', '2h' or '1d' -> seconds (UsageError otherwise)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{flag} takes a duration like 90s, 15m, 2h or 1d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_steps(text: str) -> list[int]:
    """'5,25,50,100' -> [5, 25, 50, 100]."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(
            f"--steps takes whole percentages like 5,25,50,100, got {text!r}"
        ) from None


def _margin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margin", type=float, default=0.01, help="accuracy margin (0.01 = 1 point)")
    p.add_argument("--latency-margin", dest="latency_margin", type=float, default=0.2)
    p.add_argument("--error-margin", dest="error_margin", type=float, default=0.01)
    p.add_argument("--alpha", type=float, default=0.05, help="each wrong call's error rate")
    p.add_argument("--min-labelled", dest="min_labelled", type=int, default=200)
    p.add_argument("--reason")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The online verbs' grammar."""
    p = sub.add_parser("shadow", help="mirror prod's requests to a candidate and judge it")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", nargs="?")
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--for", dest="duration", help="how long: 90s, 15m, 2h, 1d")
    p.add_argument("--stop", action="store_true", help="stop the model's shadow")
    _margin_args(p)
    p = sub.add_parser("canary", help="route a growing share to a candidate, promote or roll back")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", nargs="?")
    p.add_argument("--steps", default="5,25,50,100")
    p.add_argument(
        "--min-requests",
        dest="min_requests",
        type=int,
        default=500,
        help="requests the candidate must answer at each step before the next (default 500)",
    )
    p.add_argument("--max-duration", dest="max_duration", default="1h")
    p.add_argument("--abort", action="store_true", help="stop the model's canary")
    p.add_argument("--no-follow", dest="follow", action="store_false")
    _margin_args(p)


def _margins(args: argparse.Namespace) -> Margins:
    return Margins(
        accuracy=args.margin,
        errors=args.error_margin,
        latency=args.latency_margin,
        alpha=args.alpha,
        min_labelled=args.min_labelled,
    )


def figures_table(title: str, f: OnlineFigures | None) -> Table:
    """The figures and checks of a shadow or canary as a table."""
    t = Table(title=title, show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    if f is None:
        t.add_row("outcomes", "0 (waiting for traffic)")
        return t

    def pct(v):
        return "-" if v is None else f"{v:.2%}"

    t.add_row("paired outcomes", f"{f.outcomes:,}")
    t.add_row("with feedback", f"{f.labelled:,}")
    t.add_row("agreement", pct(f.agreement))
    t.add_row("accuracy prod / candidate", f"{pct(f.prod_accuracy)} / {pct(f.candidate_accuracy)}")
    t.add_row(
        "errors prod / candidate", f"{pct(f.prod_error_rate)} / {pct(f.candidate_error_rate)}"
    )
    ratio = "-" if f.p95_ratio is None else f"{f.p95_ratio:.2f}x"
    t.add_row("p95 latency ratio", ratio)
    for k in f.checks:
        t.add_row(f"check {k.name}", describe(k).split(": ", 1)[-1] + f"  [{k.outcome}]")
    return t


async def shadow(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Start or stop a shadow, or show the running one."""
    async with platform() as p:
        if args.stop:
            await p.bus.handle(StopShadow(model_name=args.name, reason=args.reason, metadata=meta))
            await _publish(p)
            console.print(
                f"{args.name}: shadow stopped; API processes stop mirroring within a second"
            )
            return 0
        if args.version:
            duration = parse_duration(args.duration, "--for") if args.duration else None
            cmd = StartShadow(
                model_name=args.name,
                version=args.version,
                fraction=args.fraction,
                duration_s=duration,
                margins=_margins(args),
                reason=args.reason,
                metadata=meta,
            )
            recorded = await p.bus.handle(cmd)
            await _publish(p)
            note = "" if recorded else " (already running)"
            console.print(
                f"{args.name}: shadowing {args.version} on {args.fraction:g} of prod's requests"
                f"{note}; verdicts: just shadow {args.name}, GET /models/{args.name}/shadow"
            )
            return 0
        state = await p.bus.handle(GetOnline(model_name=args.name))
    s = state.shadow
    if s is None:
        console.print(f"{args.name}: no shadow running")
        return 0
    title = f"{args.name}: shadow of {s.candidate_version} vs prod {s.prod_version}: {s.verdict}"
    console.print(figures_table(title, s.figures))
    return 0


def _canary_table(name: str, state: OnlineState, canary_id: str) -> tuple[Table, str | None]:
    c = state.canary
    if c is not None and c.canary_id == canary_id:
        steps = " → ".join(
            f"[b]{s}%[/b]" if i == c.step else f"{s}%" for i, s in enumerate(c.steps)
        )
        title = f"{name}: canary {c.candidate_version} vs prod {c.prod_version}: {steps}"
        return figures_table(title, c.figures), None
    ended = next((e for e in state.ended if e.run_id == canary_id), None)
    if ended is None:
        return figures_table(f"{name}: canary {canary_id[:8]}", None), None
    title = f"{name}: canary {ended.candidate_version} {ended.outcome}: {ended.why}"
    return figures_table(title, ended.figures), ended.outcome


async def canary(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Start a canary and follow it (exit 0 promoted or, with four eyes, passed and awaiting
    approval; 1 aborted), or abort the running one."""
    async with platform() as p:
        if args.abort:
            cmd = AbortCanary(model_name=args.name, reason=args.reason, metadata=meta)
            await p.bus.handle(cmd)
            await _publish(p)
            console.print(f"{args.name}: canary aborted; prod unchanged")
            return 0
        if not args.version:
            state = await p.bus.handle(GetOnline(model_name=args.name))
            if state.canary is None:
                console.print(f"{args.name}: no canary running")
                return 0
            canary_id = state.canary.canary_id
        else:
            cmd = StartCanary(
                model_name=args.name,
                version=args.version,
                steps=parse_steps(args.steps),
                min_requests=args.min_requests,
                max_duration_s=parse_duration(args.max_duration, "--max-duration"),
                margins=_margins(args),
                reason=args.reason,
                metadata=meta,
            )
            recorded = await p.bus.handle(cmd)
            await _publish(p)
            canary_id = recorded[0].event.canary_id
            console.print(f"{args.name}: canary {canary_id} of {args.version} started")
            if not args.follow:
                return 0
        outcome = None
        with Live(console=console, refresh_per_second=2) as live:
            while outcome is None:
                state = await p.bus.handle(GetOnline(model_name=args.name))
                table, outcome = _canary_table(args.name, state, canary_id)
                live.update(table)
                if outcome is None:
                    await asyncio.sleep(1.0)
    if outcome == "APPROVAL-PENDING":
        console.print(
            f"{args.name}: the canary passed; with four eyes another key must approve: "
            f"just approve {args.name} {args.version or ''} --reason '...'".rstrip()
        )
    return 0 if outcome in ("PROMOTED", "APPROVAL-PENDING") else 1


COMMANDS = {"shadow": shadow, "canary": canary}
