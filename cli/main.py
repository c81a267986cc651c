"""Argument parsing and dispatch; every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import uuid
from collections.abc import Awaitable, Callable

import structlog

from bootstrap import settings_or_exit
from cli import (
    audit_commands,
    batch_commands,
    demo,
    dlq_commands,
    gate_commands,
    key_commands,
    log_commands,
    ml_commands,
    online_commands,
    registry_commands,
    traffic_commands,
    trail_commands,
    witness,
)
from cli.output import fail
from cli.usage import Parser, UsageError
from domain.errors import DomainError, ServiceUnavailable
from events.base import EventMetadata
from observability.logging import bind_correlation_id, configure_logging


def os_actor() -> str:
    """The OS user running the CLI: the actor recorded on its events."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


_ACTOR = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def cli_actor(named: str | None) -> str:
    """The actor the CLI records: ``cli:`` and the OS user, or ACTOR beside it for automation.

    The prefix tells `history` readers that no key vouches for it: the CLI acts with the
    database's rights. Key names cannot hold ':', so no key can pass for it.
    """
    user = os_actor()
    if named is None:
        return f"cli:{user}"
    if not _ACTOR.fullmatch(named):
        raise SystemExit(f"error: ACTOR={named!r}: use 1-64 chars of letters, digits, '_.@-'")
    return f"cli:{named} (os {user})"


def event_metadata(named: str | None = None) -> EventMetadata:
    """Metadata for events caused by this CLI invocation."""
    correlation = uuid.uuid4()
    bind_correlation_id(str(correlation))
    return EventMetadata(actor=cli_actor(named), correlation_id=correlation)


def _pick(args: argparse.Namespace, name: str) -> str | None:
    """A value given positionally or with its original --flag spelling."""
    return getattr(args, f"{name}_opt", None) or getattr(args, name, None)


def build_parser() -> Parser:
    """The CLI grammar (original flags such as --model_name are kept)."""
    parser = Parser(prog="python -m cli", description=__doc__)
    sub = parser.add_verbs()

    def named(p: argparse.ArgumentParser, *fields: str) -> None:
        for f in fields:
            p.add_argument(f, nargs="?", default=None)
            p.add_argument(f"--{f}", dest=f"{f}_opt", default=None, help=argparse.SUPPRESS)

    p = sub.add_parser("register", help="register a model version from an artifact file")
    named(p, "model_name", "model_version", "artifact_path")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reason")
    p = sub.add_parser("promote", help="make a version prod")
    named(p, "model_name", "model_version")
    p.add_argument("--reason")
    p.add_argument("--force", action="store_true", help="override a required gate (needs --reason)")
    p = sub.add_parser("rollback", help="restore the previous prod version")
    named(p, "model_name")
    p.add_argument("--reason")
    for verb, text in (
        ("demote", "take the prod version out of prod"),
        ("archive", "retire a version so it cannot be promoted"),
    ):
        p = sub.add_parser(verb, help=text)
        named(p, "model_name", "model_version")
        p.add_argument("--reason")
    p = sub.add_parser("tag", help="set KEY=VALUE tags on a version (empty VALUE removes)")
    named(p, "model_name", "model_version")
    p.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--reason")
    p = sub.add_parser("list", help="list models and versions")
    named(p, "model_name")
    p = sub.add_parser("history", help="a model's audit trail from the event log")
    named(p, "model_name")
    p.add_argument("--at", metavar="TIME", help="the model as it was at TIME (ISO 8601)")
    p.add_argument("--wide", action="store_true", help="every column in full (no 100-col fit)")
    p.add_argument("--reverse", action="store_true", help="oldest first (default: newest first)")
    p = sub.add_parser("train", help="train a zoo architecture and register it")
    named(p, "model_name")
    p.add_argument("arch", nargs="?")
    p.add_argument("dataset", nargs="?")
    p.add_argument("epochs", nargs="?", type=int)
    p.add_argument("--version")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("batch", help="evaluate a version on a dataset through the consumer groups")
    p.add_argument("model_name", nargs="?")
    p.add_argument("--model_name", dest="model_name_opt", help=argparse.SUPPRESS)
    p.add_argument("dataset_id", nargs="?")
    p.add_argument("--dataset_id", dest="dataset_id_opt", help=argparse.SUPPRESS)
    p.add_argument("model_version", nargs="?")
    p.add_argument("--model_version", dest="model_version_opt", help=argparse.SUPPRESS)
    p.add_argument("--batch_size", "--batch-size", type=int, default=256)
    p = sub.add_parser("demo", help="the main job end to end")
    p.add_argument("--model_name", default="mnist_cnn")
    p.add_argument("--epochs", type=int, default=None)
    sub.add_parser("datasets", help="list installed datasets")
    sub.add_parser("migrate", help="upgrade the database schema")
    sub.add_parser("verify", help="check the event log's hash chain")
    sub.add_parser("rebuild-projections", help="drop projections and replay the log")
    sub.add_parser("servers", help="start the embedded servers and print their URLs")
    sub.add_parser("down", help="stop the embedded servers")
    audit_commands.add_parsers(sub)
    log_commands.add_parsers(sub)
    trail_commands.add_parsers(sub)
    key_commands.add_parsers(sub)
    gate_commands.add_parsers(sub)
    dlq_commands.add_parsers(sub)
    traffic_commands.add_parsers(sub)
    online_commands.add_parsers(sub)
    witness.add_parsers(sub)
    return parser


COMMANDS: dict[str, Callable[..., Awaitable[int]]] = {
    "register": registry_commands.register,
    "promote": registry_commands.promote,
    "rollback": registry_commands.rollback,
    "demote": registry_commands.demote,
    "tag": registry_commands.tag,
    "archive": registry_commands.archive,
    "list": registry_commands.list_models,
    "history": audit_commands.history,  # plain, or --at TIME
    "train": ml_commands.train_cmd,
    "demo": demo.run,
    "batch": batch_commands.batch_cmd,
    "datasets": ml_commands.datasets_cmd,
    "migrate": registry_commands.migrate,
    "verify": registry_commands.verify,
    "rebuild-projections": registry_commands.rebuild,
    "servers": registry_commands.servers,
    **audit_commands.COMMANDS,
    **log_commands.COMMANDS,
    **trail_commands.COMMANDS,
    **key_commands.COMMANDS,
    **gate_commands.COMMANDS,
    **dlq_commands.COMMANDS,
    **traffic_commands.COMMANDS,
    **online_commands.COMMANDS,
    **witness.COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    configure_logging(settings.observability.level("warning"))
    if args.verb == "down":
        from bootstrap import stop_embedded_servers

        stopped = stop_embedded_servers(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    values = {k: _pick(args, k) for k in ("model_name", "model_version", "artifact_path")}
    try:
        meta = event_metadata(settings.security.cli_actor)
        return asyncio.run(COMMANDS[args.verb](args, values, meta))
    except UsageError as exc:  # argparse's way: the verb's usage, the problem, exit 2
        parser.verb_parser(args.verb).error(str(exc))
    except ServiceUnavailable as exc:
        return fail(str(exc), 3)
    except DomainError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:
        structlog.get_logger("cli").debug("unexpected_error", exc_info=exc)
        return fail(f"unexpected error ({type(exc).__name__}): {exc}")
