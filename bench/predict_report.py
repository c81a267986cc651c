"""The bench-predict table and its targets (ours against the baseline and the bare loop)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)


def _baseline(runs: list[dict], conc: int) -> dict | None:
    return next((r for r in runs if r["run"] == "baseline" and r["concurrency"] == conc), None)


def _ours(runs: list[dict], processes: int, conc: int) -> dict | None:
    return next(
        (
            r
            for r in runs
            if r["run"] == "ours"
            and r["processes"] == processes
            and r["endpoint"] == "predict"
            and r["concurrency"] == conc
        ),
        None,
    )


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def targets(bare: list[dict], runs: list[dict]) -> dict:
    """The issue's targets, for ours at 1 process and at N: against the baseline, the bare loop."""
    out: dict = {"zero_errors": all(r["errors"] == 0 for r in runs)}
    # Ours against the bare loop of the graph it serves (the last one measured), batch 1.
    bare_b1 = [b for b in bare if b["batch"] == 1][-1]
    hi = max(r["concurrency"] for r in runs)
    for processes in sorted({r["processes"] for r in runs if r["run"] == "ours"}):
        c1, chi = _ours(runs, processes, 1), _ours(runs, processes, hi)
        b1, bhi = _baseline(runs, 1), _baseline(runs, hi)
        if not (c1 and chi and b1 and bhi):
            continue
        out[f"x{processes}"] = {
            f"c{hi}_qps_vs_baseline": _ratio(chi["qps"], bhi["qps"]),
            f"c{hi}_qps_target_met": chi["qps"] >= 2 * bhi["qps"],
            "c1_p50_ms": c1["p50_ms"],
            "c1_baseline_p50_ms": b1["p50_ms"],
            "c1_p50_target_met": c1["p50_ms"] <= b1["p50_ms"],
            f"c{hi}_p99_vs_baseline": _ratio(chi["p99_ms"], bhi["p99_ms"]),
            f"c{hi}_p99_target_met": chi["p99_ms"] <= 0.5 * bhi["p99_ms"],
            f"c{hi}_vs_bare_b1": _ratio(chi["qps"], bare_b1["qps"]),
            "c1_p50_overhead_vs_bare_ms": round(c1["p50_ms"] - bare_b1["p50_ms"], 3),
        }
    return out


def print_report(report: dict) -> None:
    """One table: bare loop, baseline, ours at 1 and N processes; then the targets."""
    m = report["machine"]
    title = (
        f"bench-predict: {report['model_name']} {report['model_version']} "
        f"({report['architecture']}) on {m.get('device', 'cpu')}, {m['cores']} cores"
    )
    table = Table(title=title)
    cols = (
        "run",
        "procs",
        "endpoint",
        "conc / batch",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "mean batch",
        "req/s ÷ base",
        "p50 ÷ base",
        "p99 ÷ base",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for b in report["bare_loop"]:
        table.add_row(
            f"bare loop, {b.get('graph', 'eager')}",
            "",
            "",
            f"batch {b['batch']}",
            f"{b['qps']:,.0f}",
            f"{b['p50_ms']:.2f}",
            "",
            f"{b['p99_ms']:.2f}",
            "0",
            str(b["batch"]),
            "",
            "",
            "",
        )
    runs = report["http"]
    for r in runs:
        base = _baseline(runs, r["concurrency"]) if r["run"] != "baseline" else None
        ratios = (
            (
                f"{r['qps'] / base['qps']:.2f}x",
                f"{r['p50_ms'] / base['p50_ms']:.2f}",
                f"{r['p99_ms'] / base['p99_ms']:.2f}",
            )
            if base
            else ("", "", "")
        )
        table.add_row(
            r["run"],
            str(r["processes"]),
            r["endpoint"],
            f"c={r['concurrency']}",
            f"{r['qps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
            str(r["mean_batch_size"]),
            *ratios,
        )
    console.print(table)
    t = report["targets"]
    for key, v in t.items():
        if not isinstance(v, dict):
            continue
        hi = next(k for k in v if k.endswith("_qps_vs_baseline")).split("_")[0]
        console.print(
            f"ours {key}: {hi} req/s {v[f'{hi}_qps_vs_baseline']:.2f}x baseline (target >= 2): "
            f"{_met(v[f'{hi}_qps_target_met'])}; c1 p50 {v['c1_p50_ms']:.2f} vs "
            f"{v['c1_baseline_p50_ms']:.2f} ms (target <=): {_met(v['c1_p50_target_met'])}; "
            f"{hi} p99 {v[f'{hi}_p99_vs_baseline']:.2f}x baseline (target <= 0.5): "
            f"{_met(v[f'{hi}_p99_target_met'])}"
        )
    console.print(f"zero errors: {t['zero_errors']}")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"
