"""The soak's report: a table of the minutes, one of the processes, the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.soak.stats import Check


def print_report(report: dict) -> None:
    """Both tables and the verdict, on the terminal."""
    console = Console(width=160)
    rows = report["minutes"]
    t = Table(title=f"just soak --minutes {report['minutes_asked']}: traffic by minute")
    columns = ("minute", "predictions/s", "p99 ms", "5xx", "no answer", "4xx", "ops requests")
    for c in (*columns, "jobs sub/fin/pend", "gates sub/fin/pend"):
        t.add_column(c, justify="right")
    for r in rows:
        ops = sum(n for k, n in r["requests"].items() if k not in ("predict", "v2"))
        t.add_row(
            str(r["minute"]),
            f"{r['predictions_per_s']:.0f}",
            "-" if r["p99_ms"] is None else f"{r['p99_ms']:.0f}",
            str(r["5xx"]),
            str(r["no_answer"]),
            str(r["4xx"]),
            str(ops),
            _triple(r["jobs"]),
            _triple(r["gates"]),
        )
    console.print(t)
    names = list(rows[-1]["rss_mb"]) if rows else []
    p = Table(title="RSS MB / open fds of each process, by minute")
    p.add_column("minute", justify="right")
    for n in names:
        p.add_column(n, justify="right")
    for r in rows:
        cells = [_cell(r, n) for n in names]
        p.add_row(str(r["minute"]), *cells)
    console.print(p)
    ended = report["ended"]
    console.print(
        f"warm-up {report['warm_up_s']:.0f} s; after the load: drained in {report['drain_s']:.0f} s; "
        f"jobs {ended['job_outcomes']}, "
        f"gates {ended['gate_outcomes']}, feedback {ended['feedback']}, "
        f"{ended['registry_writes']} registry writes"
    )
    v = Table(title="verdict (issue 25)")
    for c in ("criterion", "held", "figures"):
        v.add_column(c)
    for c in report["verdict"]:
        v.add_row(c["name"], "yes" if c["ok"] else "[red]NO[/red]", c["detail"])
    console.print(v)


def checks_json(checks: list[Check]) -> list[dict]:
    """The verdict's checks as JSON objects."""
    return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]


def _triple(d: dict) -> str:
    return f"{d['submitted']}/{d['finished']}/{d['pending']}"


def _cell(row: dict, name: str) -> str:
    if name not in row["rss_mb"]:
        return "-"
    return f"{row['rss_mb'][name]:.0f} / {row['fds'][name]}"
