"""The bench-predict table: the limit's parts, the HTTP floor, LitServe, the baseline and ours,
with ours ÷ the limit, ÷ LitServe and ÷ the baseline; then the targets, met or missed."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from bench.predict_targets import find

console = Console(width=None if sys.stdout.isatty() else 170)

COLUMNS = (
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
    "÷ limit",
    "÷ LitServe",
    "÷ base",
    "p99 ÷ base",
)


def _x(a: float, b: dict | None, key: str = "qps") -> str:
    return f"{a / b[key]:.2f}x" if b and b.get(key) else ""


def _limit_rows(table: Table, report: dict) -> None:
    lim = report["limit"]
    d = report["decode"]
    table.add_row(
        "decode (1 core)", "", "", "", f"{d['per_core_per_s']:,.0f}", f"{d['p50_us'] / 1000:.3f}"
    )
    for b in report["bare_loop"]:
        table.add_row(
            f"bare loop, {b['graph']}, {b['threads']} thread{'s' if b['threads'] > 1 else ''}",
            str(b["processes"]),
            "",
            f"batch {b['batch']}",
            f"{b['qps']:,.0f}",
            f"{b['p50_ms']:.2f}",
            "",
            f"{b['p99_ms']:.2f}",
            "0",
            str(b["batch"]),
        )
    table.add_row(
        "LIMIT", "", "", "", f"{lim['req_per_s']:,.0f}", f"{lim['c1_latency_ms']:.2f} (c=1)"
    )


def print_report(report: dict) -> None:
    """The table, the limit's terms, then each target with its bound."""
    m = report["machine"]
    title = (
        f"bench-predict: {report['model_name']} {report['model_version']} "
        f"({report['architecture']}) on {m.get('device', 'cpu')}, {m['cores']} cores"
    )
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="right")
    _limit_rows(table, report)
    runs, limit = report["http"], report["limit"]["req_per_s"]
    for r in runs:
        conc = r["concurrency"]
        floor = r["run"].endswith("floor")
        theirs = floor or r["run"] in ("baseline", "litserve")
        peer = None if floor or r["run"] == "litserve" else find(runs, "litserve", conc)
        base = None if theirs else find(runs, "baseline", conc)
        table.add_row(
            r["run"],
            str(r["processes"]),
            r["endpoint"],
            f"c={conc}",
            f"{r['qps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
            str(r.get("mean_batch_size", "")),
            "" if floor else f"{r['qps'] / limit:.2f}x",
            _x(r["qps"], peer),
            _x(r["qps"], base),
            _x(r["p99_ms"], base, "p99_ms"),
        )
    console.print(table)
    lim = report["limit"]
    us, c1 = lim["core_us_per_request"], lim["c1_terms_ms"]
    console.print(
        f"limit = cores / (cores/floor + 1/decode + cores/model) = {lim['req_per_s']:,.0f} req/s: "
        f"{us['http_floor']:.0f} µs HTTP floor + {us['decode']:.0f} µs decode + "
        f"{us['model']:.0f} µs model = {us['total']:.0f} µs of core time per request"
    )
    console.print(
        f"c=1 latency limit = floor p50 {c1['floor_p50']:.3f} + decode {c1['decode_p50']:.3f} + "
        f"batch-1 forward {c1['forward_b1_p50']:.3f} = {lim['c1_latency_ms']:.3f} ms"
    )
    if "c1_with_gaps_ms" in lim:
        lone = lim["lone_request_loop"]
        console.print(
            f"c=1 with a request's gaps (decode, {lone['gap_ms']:.2f} ms idle, forward, in a "
            f"loop) = floor p50 {c1['floor_p50']:.3f} + decode {lone['decode_p50_ms']:.3f} + "
            f"forward {lone['forward_p50_ms']:.3f} = {lim['c1_with_gaps_ms']:.3f} ms"
            f"{_c1_against(report, lim['c1_with_gaps_ms'])}"
        )
    if "on_framework" in lim:
        fw = lim["on_framework"]
        console.print(
            f"on Litestar (its floor {fw['framework_floor_us']:.0f} µs in the HTTP floor's place): "
            f"limit {fw['req_per_s']:,.0f} req/s, c=1 latency limit {fw['c1_latency_ms']:.3f} ms"
            f"{_against_framework(report, fw)}"
        )
    _print_memory(report.get("memory") or {})
    t = report["targets"]
    for key, v in t.items():
        if not isinstance(v, dict):
            continue
        label = f"ours {key}{' (default)' if v['default'] else ''}"
        for name, c in v["checks"].items():
            sign = ">=" if c["at_least"] else "<="
            value = "n/a" if c["value"] is None else f"{c['value']:.2f}"
            console.print(
                f"{label}: {name} = {value} (target {sign} {c['bound']:g}): "
                f"{'pass' if c['met'] else 'MISS'}"
            )
    console.print(f"zero errors: {t['zero_errors']}")


def _default_target(report: dict) -> tuple[str, dict] | None:
    """The default processes' key and entry in the report's targets, if that run is there."""
    t = report.get("targets") or {}
    return next(((k, v) for k, v in t.items() if isinstance(v, dict) and v["default"]), None)


def _c1_against(report: dict, ms: float) -> str:
    """'; ours (default processes) at c=1 ÷ it' where that run is in the report."""
    found = _default_target(report)
    if found is None:
        return ""
    key, entry = found
    return f"; ours {key} c=1 p50 ÷ it = {entry['c1_p50_ms'] / ms:.2f}"


def _against_framework(report: dict, fw: dict) -> str:
    """'; ours (default processes) ÷ them' where that run is in the report."""
    found = _default_target(report)
    if found is None:
        return ""
    key, entry = found
    hi = next(k for k in entry if k.endswith("_qps"))
    return (
        f"; ours {key}: {entry[hi] / fw['req_per_s']:.2f}x and "
        f"{entry['c1_p50_ms'] / fw['c1_latency_ms']:.2f}x of them"
    )


def _print_memory(memory: dict) -> None:
    """Each API process's PSS before and after the load."""
    for key, m in memory.items():
        after = {p["pid"]: p for p in m["after"]}
        parts = [
            f"{p['role']} {p['pid']}: {p['pss_mb']:.0f} -> "
            f"{after[p['pid']]['pss_mb'] if p['pid'] in after else float('nan'):.0f} MB"
            for p in m["before"]
        ]
        console.print(f"ours {key} PSS before -> after the load: {'; '.join(parts)}")
