"""Readable tables and one-line failures for the terminal."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console
from rich.table import Table

from domain.registry.decisions import PROD
from domain.registry.views import HistoryEntry, ModelSummary, ModelVersionView

# Piped output (CI, `just` in scripts) gets a wide fixed width so tables do not wrap.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _ts(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def models_table(rows: list[ModelSummary] | list[ModelVersionView], title: str) -> Table:
    """Versions as a table."""
    table = Table(title=title)
    for col in ("model", "version", "status", "created", "sha256"):
        table.add_column(col)
    table.add_column("accuracy on the reference dataset")
    for r in rows:
        sha = getattr(r, "sha256", "")[:12]
        status = f"[bold green]{r.status}[/]" if r.status == PROD else r.status
        table.add_row(
            r.model_name, r.model_version, status, _ts(r.created_at), sha, accuracy_cell(r)
        )
    return table


def accuracy_cell(r: ModelSummary | ModelVersionView) -> str:
    """The reference figure with its dataset and image count, or why there is none."""
    if r.accuracy is not None:
        return r.accuracy.label
    if r.reference_dataset:
        return f"not yet evaluated on {r.reference_dataset}"
    return ""


HISTORY_WIDTH = 100  # a plain `history` fits a 100-column terminal; --wide shows every character
CLI_ACTOR = "cli:"  # the prefix cli/main.py records; key names cannot contain ':'


def history_table(rows: list[HistoryEntry], title: str, wide: bool = False) -> Table:
    """The audit trail as a table; narrow by default (long cells wrap or end in an ellipsis).

    Narrow, the event type is left out (the "what" column says it in words) and the time
    drops its seconds, so the summary and the reason get most of the 100 columns.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    if wide:
        table.add_column("event", no_wrap=True)
    table.add_column("actor", no_wrap=True, overflow="ellipsis", max_width=None if wide else 16)
    table.add_column("what", no_wrap=wide, ratio=None if wide else 3)
    table.add_column("reason", no_wrap=wide, ratio=None if wide else 2)
    stamp = "%Y-%m-%d %H:%M:%S" if wide else "%Y-%m-%d %H:%M"
    for r in rows:
        event = [r.event_type] if wide else []
        when = r.recorded_at.astimezone().strftime(stamp)
        table.add_row(str(r.position), when, *event, r.actor, r.summary, r.reason or "")
    if any(r.actor.startswith(CLI_ACTOR) for r in rows):
        table.caption = (
            "cli:NAME = an OS user of the CLI (or its ACTOR setting), not authenticated: "
            "the CLI acts with the database's rights, not with a key"
        )
        table.caption_justify = "left"
    return table


def print_history(rows: list[HistoryEntry], title: str, wide: bool = False) -> None:
    """Print the trail: at most HISTORY_WIDTH columns, or unbounded with ``wide``."""
    table = history_table(rows, title, wide)
    if not wide:
        console.print(table, width=min(HISTORY_WIDTH, console.width))
        return
    # Unbounded: no cell wraps. Title and caption go outside, as rich pads them to the width.
    caption, table.title, table.caption = table.caption, None, None
    unbounded = Console(width=100_000, file=console.file, color_system=console.color_system)
    unbounded.print(title, highlight=False)
    unbounded.print(table)
    if caption:
        unbounded.print(caption, highlight=False)


def fail(message: str, code: int = 1) -> int:
    """Print a one-line reason and return the exit code."""
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return code
