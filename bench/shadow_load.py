"""`just bench-shadow`'s first part: prod's c=32 load with no shadow, a shadow at fraction 0.1
and one at 1.0, on the same API processes, in counterbalanced order (none, 0.1, 1.0, 1.0, 0.1,
none per pair of rounds), so that a drift of the shared machine hits every arm alike.

Each arm's latencies are pooled over its rounds, and each block of three rounds (one per arm, run
back to back) gives a shadow arm's ratios to the no-shadow round beside it; the targets are read
on the median of those paired ratios, as the gates read latency, because a round that the shared
machine disturbs moves a pooled figure by as much as the shadow's whole cost (single rounds of
one arm move ±20% within a run). The mirror's counters come from every API
process's /metrics (told apart by the pid each response carries), read when the load stops and
again 2 s later: what was still queued is mirrored or dropped by then, so the tail shows the
queue's bound (256 per process) rather than a backlog.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import numpy as np

from bench.load_loops import closed_loop
from bench.load_report import summarize
from bench.load_requests import build_requests
from bench.shadow_cpu import CpuMeter, cpu_delta, drain
from bench.shadow_models import cli

ARMS = {"none": None, "shadow 0.1": 0.1, "shadow 1.0": 1.0}
COUNTERS = ("online_mirrored", "online_dropped", "traffic_captured", "traffic_dropped")
FOLLOW_S = 1.5  # API processes re-read the running shadows every 0.5 s
TAIL_S = 2.0  # a queued request is mirrored, or dropped as stale after 1 s, within this


async def scrape_counters(url: str, processes: int, pids: set | None = None) -> dict[str, float]:
    """The mirror and capture counters summed over every API process, keyed 'name{reason}'
    (the processes' pids added to ``pids`` when given)."""
    per_pid: dict[str, dict[str, float]] = {}
    limits = httpx.Limits(max_keepalive_connections=0)  # each probe may reach another process
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        for _ in range(60 * processes):
            response = await client.get("/metrics")
            values: dict[str, float] = {}
            for line in response.text.splitlines():
                if line.startswith("#") or not line.startswith(COUNTERS):
                    continue
                series, _, value = line.rpartition(" ")
                name = series.split("{", 1)[0].removesuffix("_total")
                reason = series.partition('reason="')[2].partition('"')[0]
                key = f"{name}{{{reason}}}" if reason else name
                values[key] = values.get(key, 0.0) + float(value)
            per_pid[response.headers.get("x-server-pid", "?")] = values
            if len(per_pid) >= processes:
                break
    if pids is not None:
        pids.update(per_pid)
    total: dict[str, float] = {}
    for values in per_pid.values():
        for k, v in values.items():
            total[k] = total.get(k, 0.0) + v
    return total


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0)}


async def set_shadow(model_name: str, candidate: str, fraction: float | None) -> None:
    """Stop the running shadow, start one at ``fraction`` (None: none), as `just shadow` does."""
    await asyncio.to_thread(cli, "shadow", model_name, "--stop", check=False)
    if fraction is not None:
        args = ("shadow", model_name, candidate, "--fraction", str(fraction))
        await asyncio.to_thread(cli, *args, "--reason", "bench-shadow")
    await asyncio.sleep(FOLLOW_S)


def order(rounds: int) -> list[str]:
    """none, 0.1, 1.0 then 1.0, 0.1, none, ... (``rounds`` of each arm)."""
    names = list(ARMS)
    return [a for r in range(rounds) for a in (names if r % 2 == 0 else names[::-1])]


async def load_phase(
    url: str, model_name: str, candidate: str, images: np.ndarray, args, log, worker_pid, redis
) -> dict:
    """Every arm's c=32 figures, pooled over ``args.rounds`` rounds; the per-round rows too."""
    processes = args.api_processes
    requests = build_requests(url, "predict", model_name, images)
    await closed_loop(url, requests, 8, 500)  # warm both processes' batchers and graphs
    pids: set[str] = set()
    await scrape_counters(url, processes, pids)
    meter = CpuMeter(args.scratch, pids, worker_pid)
    pooled: dict[str, dict] = {
        a: {"lat": [], "st": [], "dur": 0.0, "n": {}, "cpu": {}} for a in ARMS
    }
    rounds: list[dict] = []
    current = "none"
    for i, arm in enumerate(order(args.rounds)):
        if arm != current:
            await set_shadow(model_name, candidate, ARMS[arm])
            current = arm
        await drain(redis)
        before = await scrape_counters(url, processes)
        cpu_before = meter.sample()
        lat, st, dur = await closed_loop(url, requests, args.concurrency, args.load_requests)
        at_stop = await scrape_counters(url, processes)
        await asyncio.sleep(TAIL_S)
        after = await scrape_counters(url, processes)
        # What the arm left to the worker (captures to record, outcomes to store) is its cost.
        drain_s = await drain(redis)
        cpu = cpu_delta(meter.sample(), cpu_before)
        r = _summary(lat, st, dur, args.concurrency)
        counts = delta(after, before)
        tail = delta(after, at_stop)
        row = {
            "arm": arm,
            "block": i // len(ARMS),
            "requests": r.total,
            "qps": r.qps,
            "p50_ms": round(r.p50_ms, 2),
            "p99_ms": round(r.p99_ms, 2),
            "errors": r.errors,
            "counters": counts,
            "after_stop": tail,
            "cpu_s": cpu,
            "worker_catch_up_s": drain_s,
            "load_average_1m": round(_loadavg(), 2),
        }
        rounds.append(row)
        p = pooled[arm]
        p["lat"] += lat
        p["st"] += st
        p["dur"] += dur
        for k, v in counts.items():
            p["n"][k] = p["n"].get(k, 0) + v
        for k, v in cpu.items():
            p["cpu"][k] = round(p["cpu"].get(k, 0.0) + v, 2)
        mirrored = counts.get("online_mirrored", 0)
        dropped = sum(v for k, v in counts.items() if k.startswith("online_dropped"))
        log(
            f"{arm:>10}: {r.qps:,.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
            f"errors {r.errors}, mirrored {mirrored:,}, dropped {dropped:,}; CPU s {cpu}, "
            f"worker caught up in {drain_s} s"
        )
    await set_shadow(model_name, candidate, None)
    return {"arms": [_arm(a, pooled[a], args.concurrency) for a in ARMS], "rounds": rounds}


def paired_ratios(rounds: list[dict]) -> dict[str, dict]:
    """Each shadow arm's per-block ratios to the no-shadow round of the same block, and their
    medians (qps and p99)."""
    blocks: dict[int, dict[str, dict]] = {}
    for row in rounds:
        blocks.setdefault(row["block"], {})[row["arm"]] = row
    out: dict[str, dict] = {}
    for arm, fraction in ARMS.items():
        if fraction is None:
            continue
        pairs = [b for b in blocks.values() if "none" in b and arm in b]
        qps = [b[arm]["qps"] / b["none"]["qps"] for b in pairs]
        p99 = [b[arm]["p99_ms"] / b["none"]["p99_ms"] for b in pairs]
        out[arm] = {
            "qps_ratios": [round(x, 3) for x in qps],
            "p99_ratios": [round(x, 3) for x in p99],
            "qps_ratio": round(float(np.median(qps)), 3) if qps else None,
            "p99_ratio": round(float(np.median(p99)), 3) if p99 else None,
        }
    return out


def _arm(name: str, p: dict, concurrency: int) -> dict:
    r = _summary(p["lat"], p["st"], p["dur"], concurrency)
    n = p["n"]
    dropped = {k.partition("{")[2].rstrip("}"): v for k, v in n.items() if "online_dropped" in k}
    return {
        "arm": name,
        "fraction": ARMS[name],
        "requests": r.total,
        "qps": r.qps,
        "p50_ms": round(r.p50_ms, 2),
        "p99_ms": round(r.p99_ms, 2),
        "errors": r.errors,
        "mirrored": n.get("online_mirrored", 0),
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dropped,
        "captured": n.get("traffic_captured", 0),
        "cpu_s": p["cpu"],
    }


def _summary(lat: list, st: list, dur: float, concurrency: int):
    return summarize(
        lat, st, dur, endpoint="predict", mode="closed", concurrency=concurrency, rate=None
    )


def _loadavg() -> float:
    return os.getloadavg()[0]


def ratios(arms: list[dict], rounds: list[dict]) -> dict:
    """Each shadow arm's throughput and p99 against the no-shadow arm (the median of the
    per-block ratios, and the pooled figures' ratio beside it), with the issue's targets."""
    base = next(a for a in arms if a["fraction"] is None)
    paired = paired_ratios(rounds)
    out = {}
    for a in arms:
        if a["fraction"] is None:
            continue
        out[a["arm"]] = {
            **paired[a["arm"]],
            "pooled_qps_ratio": round(a["qps"] / base["qps"], 3),
            "pooled_p99_ratio": round(a["p99_ms"] / base["p99_ms"], 3),
        }
    tenth = out.get("shadow 0.1", {})
    full = next((a for a in arms if a["fraction"] == 1.0), None)
    out["targets"] = {
        "fraction 0.1: qps >= 0.9x": (tenth.get("qps_ratio") or 0) >= 0.9,
        "fraction 0.1: p99 <= 1.2x": (tenth.get("p99_ratio") or 9) <= 1.2,
        "fraction 1.0: no prod error": bool(full) and full["errors"] == 0,
        # Bounded: each request mirrored or its drop counted (none dropped when the mirror keeps up).
        "fraction 1.0: every request mirrored or counted dropped": bool(full)
        and full["mirrored"] + full["dropped"] == full["requests"],
    }
    return out
