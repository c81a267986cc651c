"""The verifiable log's verbs: the public key (`just audit-key`) and checkpoints (`just checkpoint`)."""

from __future__ import annotations

import argparse
import base64

from cli.output import fail
from cli.registry_commands import Values, platform
from events.base import EventMetadata


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The log verbs' grammar."""
    sub.add_parser(
        "audit-key",
        help="print the log's public key (made on first use) for verifiers and witnesses",
    )
    p = sub.add_parser("checkpoint", help="print the latest signed checkpoint of the log")
    p.add_argument("--new", action="store_true", help="sign one of the whole log now first")
    p.add_argument("--json", action="store_true", help="size, root, note and cosigners as JSON")


async def audit_key(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Print the public key line; the private key stays in its file (mode 600)."""
    from bootstrap.cli import log_public_key

    key, _ = log_public_key()
    print(key)
    return 0


async def checkpoint(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Print the latest checkpoint's signed note (with --new, of the log as it is now)."""
    async with platform() as p:
        found = await (p.transparency.checkpoint_now() if args.new else p.transparency.latest())
    if found is None:
        return fail(
            "no checkpoint yet: `just checkpoint --new` signs one (the log must not be empty)"
        )
    if args.json:
        import msgspec

        out = {
            "size": found.size,
            "root_hash": base64.b64encode(found.root).decode(),
            "created_at": found.created_at.isoformat(),
            "cosigned_by": list(found.cosigned_by),
            "note": found.note,
        }
        print(msgspec.json.encode(out).decode())
    else:
        print(found.note, end="")
    return 0


COMMANDS = {"audit-key": audit_key, "checkpoint": checkpoint}
