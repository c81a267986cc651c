"""Traffic verbs: capture (show or set a model's capture policy) and dataset-from-traffic
(freeze captured requests into a dataset id that batch and gate take)."""

from __future__ import annotations

import argparse

from cli.output import console
from cli.registry_commands import Values, _publish, platform
from cli.usage import UsageError
from domain.audit.reports import parse_time
from domain.traffic.commands import FreezeTrafficDataset, GetCapturePolicy, SetCapturePolicy
from domain.traffic.policy import DEFAULT_RETENTION_DAYS
from events.base import EventMetadata
from events.traffic import TRAFFIC_DATASET_PREFIX


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The traffic verbs' grammar."""
    p = sub.add_parser("capture", help="show or set a model's traffic capture policy")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--fraction", type=float, help="share of answered requests (0 stops capture)")
    p.add_argument("--max-per-s", dest="max_per_s", type=float, help="per API process")
    p.add_argument("--retention-days", dest="retention_days", type=int)
    p.add_argument("--reason")
    p = sub.add_parser(
        "dataset-from-traffic", help="freeze a model's captured requests into traffic:<name>"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("dataset_id", metavar="DATASET_ID", help="traffic:<name> (or just <name>)")
    p.add_argument("--since", help="ISO 8601 time, captured at or after")
    p.add_argument("--until", help="ISO 8601 time, captured before")
    p.add_argument("--labelled-only", dest="labelled_only", action="store_true")
    p.add_argument("--reason")


def _show(p) -> str:
    if p.fraction == 0:
        return f"{p.model_name}: no capture (fraction 0)"
    return (
        f"{p.model_name}: capture {p.fraction:g} of answered requests, at most "
        f"{p.max_per_s:g}/s per API process, kept {p.retention_days} days"
    )


async def capture(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Show the policy, or record CapturePolicySet when --fraction is given."""
    async with platform() as p:
        if args.fraction is None:
            if args.max_per_s is not None or args.retention_days is not None:
                raise UsageError("--max-per-s and --retention-days need --fraction")
            console.print(_show(await p.bus.handle(GetCapturePolicy(model_name=args.name))))
            return 0
        current = await p.bus.handle(GetCapturePolicy(model_name=args.name))
        cmd = SetCapturePolicy(
            model_name=args.name,
            fraction=args.fraction,
            max_per_s=args.max_per_s if args.max_per_s is not None else current.max_per_s or 10.0,
            retention_days=args.retention_days or current.retention_days or DEFAULT_RETENTION_DAYS,
            reason=args.reason,
            metadata=meta,
        )
        recorded = await p.bus.handle(cmd)
        await _publish(p)
        policy = await p.bus.handle(GetCapturePolicy(model_name=args.name))
    note = "" if recorded else " (unchanged)"
    console.print(_show(policy) + note + "; every API process follows within about a second")
    return 0


async def dataset_from_traffic(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Record TrafficDatasetFrozen and copy the requests into the dataset."""
    dataset_id = args.dataset_id
    if not dataset_id.startswith(TRAFFIC_DATASET_PREFIX):
        dataset_id = TRAFFIC_DATASET_PREFIX + dataset_id
    cmd = FreezeTrafficDataset(
        model_name=args.name,
        dataset_id=dataset_id,
        since=parse_time(args.since, "--since") if args.since else None,
        until=parse_time(args.until, "--until") if args.until else None,
        labelled_only=args.labelled_only,
        reason=args.reason,
        metadata=meta,
    )
    async with platform() as p:
        recorded = await p.bus.handle(cmd)
        await _publish(p)
    e = recorded[0].event
    console.print(
        f"{e.dataset_id}: {len(e.request_ids)} requests of {e.model_name} frozen, "
        f"{e.labelled} labelled (only those are evaluated), sha256 {e.digest}\n"
        f"use it like any dataset id: just batch {e.model_name} {e.dataset_id}"
    )
    return 0


COMMANDS = {"capture": capture, "dataset-from-traffic": dataset_from_traffic}
