"""Key verbs of the CLI: create-key (prints the key once), revoke-key, keys."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cli.output import console, err_console
from cli.registry_commands import Values, platform
from domain.errors import Conflict, InvalidInput
from domain.keys.aggregate import check_key_name
from domain.keys.commands import CreateApiKey, RevokeApiKey
from events.base import EventMetadata
from events.keys import ROLES


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The key verbs' grammar."""
    p = sub.add_parser("create-key", help="create an API key (printed once, stored as its hash)")
    p.add_argument("key_name", metavar="NAME")
    p.add_argument("role", metavar="ROLE", help=" < ".join(ROLES))
    p.add_argument("--reason")
    p.add_argument("--out", metavar="FILE", help="write the key to FILE (mode 600), not stdout")
    p.add_argument("--if-absent", action="store_true", help="do nothing if NAME has a live key")
    p = sub.add_parser("revoke-key", help="revoke an API key")
    p.add_argument("key_name", metavar="NAME")
    p.add_argument("--reason")
    p.add_argument(
        "--force",
        action="store_true",
        help="revoke even the last active admin key (needs --reason)",
    )
    sub.add_parser("keys", help="list API keys (names, roles, who created or revoked them)")


def _target(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


def _exists(path: Path) -> bool:
    return path.exists()


def _write_secret(path: Path, secret: str) -> None:
    """Create FILE readable by its owner only; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists; remove it or choose another --out") from None
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


async def create_key(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Create a key for NAME with ROLE; print it once (or write it to --out)."""
    name = check_key_name(args.key_name)
    out = _target(args.out)
    if out is not None and _exists(out):
        if args.if_absent:
            console.print(f"{out} exists; key {name!r} was created before")
            return 0
        raise InvalidInput(f"{out} exists; remove it or choose another --out")
    async with platform() as p:
        try:
            cmd = CreateApiKey(key_name=name, role=args.role, reason=args.reason, metadata=meta)
            result = await p.bus.handle(cmd)
        except Conflict:
            if not args.if_absent:
                raise
            console.print(f"key {name!r} exists; nothing to do")
            return 0
    assert result.secret is not None
    if out is not None:
        _write_secret(out, result.secret)
        console.print(f"created key {name!r} ({args.role}); it is in {out} (readable by you only)")
    else:
        print(result.secret)
        err_console.print(
            f"created key {name!r} ({args.role}); send it as the X-API-Key header. It is shown "
            "this once: only its SHA-256 is stored."
        )
    return 0


async def revoke_key(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Revoke NAME's key."""
    name = check_key_name(args.key_name)
    async with platform() as p:
        cmd = RevokeApiKey(key_name=name, reason=args.reason, force=args.force, metadata=meta)
        result = await p.bus.handle(cmd)
        ttl = p.settings.security.key_cache_ttl_s
    if result.changed:
        console.print(f"revoked key {name!r}; every API process refuses it within {ttl:g} s")
    else:
        console.print(f"key {name!r} was already revoked")
    return 0


async def list_keys(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Every key name with its role and state (never the key)."""
    from rich.table import Table

    table = Table(title="API keys")
    for col in ("name", "role", "state", "created", "by", "revoked by"):
        table.add_column(col)
    async with platform() as p:
        after = None
        while page := await p.keys.list_keys(after, 500):
            for k in page:
                state = "active" if k.active else "revoked"
                created = k.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                table.add_row(k.key_name, k.role, state, created, k.created_by, k.revoked_by or "")
            after = page[-1].key_name
    console.print(table)
    return 0


COMMANDS = {"create-key": create_key, "revoke-key": revoke_key, "keys": list_keys}
