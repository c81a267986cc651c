"""Dead-letter verbs: dlq (list with reasons), dlq-retry and dlq-drop (each an event with its
actor, the OS user running the CLI)."""

from __future__ import annotations

import argparse
import json

import msgspec
from rich.table import Table

from cli.output import console
from cli.registry_commands import Values, platform
from domain.dead_letters.commands import DropDeadLetter, ListDeadLetters, RetryDeadLetter
from events.base import EventMetadata


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The dead-letter verbs' grammar."""
    p = sub.add_parser("dlq", help="list dead-lettered entries with their reasons")
    p.add_argument("stream", nargs="?", help="e.g. jobs.shards (default: every stream)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    for verb, text in (
        ("dlq-retry", "hand a dead letter back to its consumer group"),
        ("dlq-drop", "discard a dead letter"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("dead_letter_id", metavar="ID", help="ENTRY_ID or DLQ_STREAM/ENTRY_ID")
        p.add_argument("--reason")


async def dlq(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Dead letters of one stream or of all, oldest first."""
    async with platform() as p:
        letters = await p.bus.handle(ListDeadLetters(stream=args.stream, limit=args.limit))
    if args.json:
        for letter in letters:
            print(json.dumps(msgspec.to_builtins(letter)))
        return 0
    table = Table(title=f"dead letters ({len(letters)})")
    for col in ("id", "group", "entry", "what", "reason"):
        table.add_column(col, overflow="fold")
    for d in letters:
        what = " ".join(
            f"{k}={v}" for k, v in (("type", d.type), ("job", d.job_id), ("shard", d.shard)) if v
        )
        entry = f"{d.stream} {d.original_id}"
        table.add_row(f"{d.dlq_stream}/{d.entry_id}", d.group, entry, what, d.reason)
    console.print(table)
    return 0


async def dlq_retry(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Record DeadLetterRetried; the group named in the dead letter handles it again."""
    async with platform() as p:
        cmd = RetryDeadLetter(dead_letter_id=args.dead_letter_id, reason=args.reason, metadata=meta)
        letter, _ = await p.bus.handle(cmd)
    console.print(
        f"retrying {letter.dlq_stream}/{letter.entry_id}: the {letter.group} group handles it "
        "again (a worker must be running); it leaves the dead letters once handled"
    )
    return 0


async def dlq_drop(args: argparse.Namespace, _: Values, meta: EventMetadata) -> int:
    """Record DeadLetterDropped and remove the entry."""
    async with platform() as p:
        cmd = DropDeadLetter(dead_letter_id=args.dead_letter_id, reason=args.reason, metadata=meta)
        letter, _ = await p.bus.handle(cmd)
    console.print(f"dropped {letter.dlq_stream}/{letter.entry_id}")
    return 0


COMMANDS = {"dlq": dlq, "dlq-retry": dlq_retry, "dlq-drop": dlq_drop}
