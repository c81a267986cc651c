"""`just bench-shadow`'s tables: prod under each shadow arm, and the two canaries."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def load_table(report: dict) -> Table:
    """Prod's c=32 figures with no shadow, a shadow at 0.1 and at 1.0: pooled over rounds, the
    ratios the median of the per-block ones (each block one round of every arm)."""
    load = report["load"]
    s = report["settings"]
    title = f"prod at c={s['concurrency']}, {load['rounds_each']} rounds per arm"
    t = Table(
        title=f"{title}, {s['api_processes']} API processes",
        caption="× none: the median of each block's ratio to its no-shadow round",
    )
    cols = ("arm", "req/s", "× none", "p50 ms", "p99 ms", "× none", "errors", "mirrored")
    for col in cols:
        t.add_column(col, justify="left" if col == "arm" else "right")
    t.add_column("dropped (why)")
    t.add_column("CPU ms/req: API, worker, PG, Redis, client", justify="right")
    ratios = load["ratios"]
    for a in load["arms"]:
        r = ratios.get(a["arm"], {"qps_ratio": 1.0, "p99_ratio": 1.0})
        why = ", ".join(f"{k or '?'} {v:,}" for k, v in sorted(a["dropped_by_reason"].items()))
        t.add_row(
            a["arm"],
            f"{a['qps']:,.0f}",
            f"{r['qps_ratio']:.2f}×",
            f"{a['p50_ms']:.1f}",
            f"{a['p99_ms']:.1f}",
            f"{r['p99_ratio']:.2f}×",
            f"{a['errors']}",
            f"{a['mirrored']:,}",
            f"{a['dropped']:,}" + (f" ({why})" if why else ""),
            _cpu(a),
        )
    return t


def _cpu(arm: dict) -> str:
    """CPU milliseconds per request of each process group (the arm's drain included)."""
    cpu, n = arm.get("cpu_s", {}), max(1, arm["requests"])
    keys = ("api", "worker", "postgres", "redis", "load generator")
    return ", ".join(f"{1000 * cpu.get(k, 0.0) / n:.2f}" for k in keys)


def canary_table(report: dict) -> Table:
    """Each canary: accuracies, verdict, the deciding check and what it took."""
    models = {m["version"]: m for m in report["models"]}
    prod = next(m for m in report["models"] if m["role"] == "prod")
    t = Table(title=f"canaries, steps {report['settings']['steps']} (default margins)")
    for col in ("candidate", "test acc. (prod)", "verdict", "deciding check"):
        t.add_column(col)
    for col in ("sent", "with feedback", "paired labelled", "wall s"):
        t.add_column(col, justify="right")
    for c in report["canaries"]:
        m = models[c["version"]]
        t.add_row(
            f"{c['version']} ({m['role']})",
            f"{m['accuracy']:.2%} ({prod['accuracy']:.2%})",
            c["outcome"],
            c["why"][:70],
            f"{c['requests_sent']:,}",
            f"{c['labelled']:,}",
            f"{c['paired_labelled'] or 0:,}",
            f"{c['wall_s']:.0f}",
        )
    return t


def print_report(report: dict) -> None:
    """Both tables and the targets."""
    console.print(load_table(report))
    if report["canaries"]:
        console.print(canary_table(report))
    for what, ok in report["targets"].items():
        console.print(f"  {'[green]met' if ok else '[red]missed'}[/]  {what}")
