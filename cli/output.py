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
    for col in ("model", "version", "status", "created", "sha256", "accuracy"):
        table.add_column(col)
    for r in rows:
        sha = getattr(r, "sha256", "")[:12]
        metrics = getattr(r, "metrics", None) or {}
        acc = metrics.get("accuracy")
        meta = getattr(r, "metadata", None) or {}
        acc = acc if acc is not None else (meta.get("test_metrics") or {}).get("accuracy")
        status = f"[bold green]{r.status}[/]" if r.status == PROD else r.status
        table.add_row(
            r.model_name,
            r.model_version,
            status,
            _ts(r.created_at),
            sha,
            f"{acc:.4f}" if isinstance(acc, int | float) else "",
        )
    return table


def history_table(rows: list[HistoryEntry], title: str) -> Table:
    """The audit trail as a table."""
    table = Table(title=title)
    for col in ("#", "time", "event", "actor", "what", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r.position), _ts(r.recorded_at), r.event_type, r.actor, r.summary, r.reason or ""
        )
    return table


def fail(message: str, code: int = 1) -> int:
    """Print a one-line reason and return the exit code."""
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return code
