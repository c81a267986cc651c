"""Offline evidence from the log: `just export-trail` (a bundle) and `just receipt` (a promotion's
receipt). `python -m cli.offline` verifies both with public keys only."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.registry_commands import Values, platform
from domain import names
from domain.audit.offline.bundle import encode
from events.base import EventMetadata


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The export verbs' grammar."""
    p = sub.add_parser("export-trail", help="write a verifiable bundle of the log to FILE")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model", metavar="NAME", help="only the model's streams, each entry proven")
    p.add_argument("--to", dest="to_position", type=int, metavar="POSITION")
    p = sub.add_parser("receipt", help="write the evidence of a promotion to FILE")
    p.add_argument("receipt_name", metavar="NAME")
    p.add_argument("receipt_version", metavar="VERSION")
    p.add_argument("file", metavar="FILE")


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise SystemExit(f"error: cannot write {path}: {exc.strerror}") from None


async def export_trail(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Write the bundle; say how many entries under which checkpoint."""
    from bootstrap.exports import trail_exports

    model = names.check_model_name(args.model) if args.model else None
    async with platform() as p:
        bundle = await trail_exports(p.transparency).export_trail(model, args.to_position)
    _write(args.file, encode(bundle))
    size = bundle.checkpoint.split("\n")[1]
    what = f"of model {model}, each with its proof" if model else "from leaf 0"
    print(f"wrote {args.file}: {len(bundle.entries)} entries {what}, checkpoint size {size}")
    print(f"verify: just verify-offline {args.file} --key KEYFILE (`just audit-key` prints it)")
    return 0


async def receipt(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Write the receipt of a version's latest promotion."""
    from bootstrap.exports import trail_exports

    name = names.check_model_name(args.receipt_name)
    version = names.check_version(args.receipt_version)
    async with platform() as p:
        doc = await trail_exports(p.transparency).receipt(name, version)
    _write(args.file, encode(doc))
    gate = "its gate verdict, " if doc.gate else "no gate verdict (none cleared it), "
    print(f"wrote {args.file}: {name} {version}'s registration, {gate}its promotion")
    print(f"verify: just verify-receipt {args.file} --key KEYFILE [--artifact PATH]")
    return 0


COMMANDS = {"export-trail": export_trail, "receipt": receipt}
