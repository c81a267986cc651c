"""bench-predict's targets: ours against the machine's limit, the tuned peer and the baseline,
and v2 infer against /predict; each a figure, its bound and whether it was met."""

from __future__ import annotations

LIMIT_SHARE = 0.75  # c=hi req/s >= 0.75x the limit
PEER_FACTOR = 2.0  # c=hi req/s >= 2x LitServe
LATENCY_SLACK = 1.25  # c=1 p50 <= 1.25x the c=1 latency limit
V2_SHARE = 0.9  # v2 infer within 10% of /predict


def find(runs: list[dict], run: str, conc: int, processes: int | None = None, endpoint="predict"):
    """The row of ``run`` at ``conc`` (and ``processes``, ``endpoint``), or None."""
    for r in runs:
        if (
            r["run"] == run
            and r["concurrency"] == conc
            and r["endpoint"] == endpoint
            and (processes is None or r["processes"] == processes)
        ):
            return r
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None without both."""
    return round(a / b, 3) if a is not None and b else None


def _check(value: float | None, bound: float, at_least: bool) -> dict:
    met = value is not None and (value >= bound if at_least else value <= bound)
    return {"value": value, "bound": bound, "at_least": at_least, "met": met}


def targets(report: dict, default_processes: int) -> dict:
    """The issue's targets for ours with ``default_processes`` (and x1 where measured)."""
    runs, limit = report["http"], report["limit"]
    hi = max(r["concurrency"] for r in runs)
    out: dict = {"zero_errors": all(r["errors"] == 0 for r in runs), "concurrency": hi}
    for processes in sorted({r["processes"] for r in runs if r["run"] == "ours"}):
        c1, chi = find(runs, "ours", 1, processes), find(runs, "ours", hi, processes)
        peer, base_hi = find(runs, "litserve", hi), find(runs, "baseline", hi)
        base_c1 = find(runs, "baseline", 1)
        if not (c1 and chi):
            continue
        checks = {
            f"c{hi} req/s ÷ limit": _check(
                ratio(chi["qps"], limit["req_per_s"]), LIMIT_SHARE, True
            ),
            f"c{hi} req/s ÷ LitServe": _check(
                ratio(chi["qps"], peer and peer["qps"]), PEER_FACTOR, True
            ),
            "c1 p50 ÷ latency limit": _check(
                ratio(c1["p50_ms"], limit["c1_latency_ms"]), LATENCY_SLACK, False
            ),
            f"c{hi} req/s ÷ baseline": _check(
                ratio(chi["qps"], base_hi and base_hi["qps"]), 2.0, True
            ),
            f"c{hi} p99 ÷ baseline": _check(
                ratio(chi["p99_ms"], base_hi and base_hi["p99_ms"]), 0.5, False
            ),
            "c1 p50 ÷ baseline": _check(
                ratio(c1["p50_ms"], base_c1 and base_c1["p50_ms"]), 1.0, False
            ),
        }
        for endpoint in sorted({r["endpoint"] for r in runs if r["endpoint"] != "predict"}):
            for conc in sorted({r["concurrency"] for r in runs}):
                v2 = find(runs, "ours", conc, processes, endpoint)
                mine = find(runs, "ours", conc, processes)
                if v2 and mine:
                    checks[f"{endpoint} c{conc} req/s ÷ /predict"] = _check(
                        ratio(v2["qps"], mine["qps"]), V2_SHARE, True
                    )
        out[f"x{processes}"] = {
            "default": processes == default_processes,
            "c1_p50_ms": c1["p50_ms"],
            f"c{hi}_qps": chi["qps"],
            "checks": checks,
        }
    return out
