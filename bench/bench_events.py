"""Benchmark the event log: append throughput, replay from PostgreSQL, `just audit`, and the
verifiable log (append with the Merkle tree maintained, proofs and audit on 1,000,000 events,
export-trail + verify-offline).

It works in scratch databases (created and dropped here) and an empty Redis database index,
so it never touches the platform's own data. The bare SELECT of the same rows, in the same
chunks, in the same run, is the limit the replay and the audit are compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

import bootstrap
from bench import tree_append
from bench.bench_log_tree import export_verify, log_size, run_tree
from bench.event_workload import PER_UNIT, append_single, append_streams, scratch, timed
from bench.event_workload import _metrics as _metrics  # bench_console imports it from here
from domain.audit.reports import TrailFilter
from storage.audit.auditor import Auditor
from storage.audit.reader import COLUMNS, chunks
from storage.audit.replay import EventLogReader
from storage.projections import rebuild_projections
from storage.streams.relay import Relay

ROOT = Path(__file__).resolve().parent.parent
SINGLE_UNITS = 30  # about 1,000 events appended one per transaction


async def seed(engine: AsyncEngine, events: int) -> dict:
    """Write about ``events`` events; measure single-event and batched appends."""
    units = max(1, events // PER_UNIT)
    single, single_s = await timed(append_single(engine, 0, min(SINGLE_UNITS, units)))
    batched, batched_s = await timed(append_streams(engine, SINGLE_UNITS, units - SINGLE_UNITS))
    return {
        "units": units,
        "single_events": single,
        "single_events_per_s": round(single / single_s),
        "batched_events": batched,
        "batched_events_per_s": round(batched / batched_s) if batched else 0,
    }


async def bare_select(engine: AsyncEngine) -> tuple[int, float]:
    """Every row, same columns and chunks as the replay and the audit, nothing decoded."""
    started, n = time.perf_counter(), 0
    async with engine.connect() as conn:
        async for rows in chunks(conn, columns=COLUMNS):
            n += len(rows)
    return n, time.perf_counter() - started


async def replay(engine: AsyncEngine) -> tuple[int, float, float]:
    """The whole trail decoded (what `just replay --json` reads before printing)."""
    started, cpu, n = time.perf_counter(), time.process_time(), 0
    async for entries in EventLogReader(engine).trail(TrailFilter()):
        n += len(entries)
    return n, time.perf_counter() - started, time.process_time() - cpu


async def run(events: int, redis_db: int, state: Path, rounds: int, export: bool) -> dict:
    """The 100,000-event figures, then the tree arms, in a scratch database dropped at the end."""
    async with scratch(redis_db) as (engine, redis, db_url):
        out: dict = {"append": await seed(engine, events)}
        _, seconds = await timed(rebuild_projections(engine))
        out["rebuild_projections_s"] = round(seconds, 2)
        published, seconds = await timed(Relay(engine, redis, batch=2000).publish_once())
        out["relay"] = {"events": published, "seconds": round(seconds, 2)}
        n, bare_s = await bare_select(engine)
        _, replay_s, replay_cpu = await replay(engine)
        out["events"] = n
        out["bare_select"] = {"seconds": round(bare_s, 3), "rows_per_s": round(n / bare_s)}
        out["replay"] = {
            "seconds": round(replay_s, 3),
            "events_per_s": round(n / replay_s),
            "cpu_seconds": round(replay_cpu, 3),
        }
        auditor = Auditor(engine, redis)
        cpu = time.process_time()
        report = await auditor.run()
        out["audit"] = {
            "seconds": report.seconds,
            "ok": report.ok,
            "checks": report.checks,
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }
        # Other work on a shared machine slows every figure: say how busy it was.
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
        chain = await auditor.run(projections=False, streams=False)
        out["audit_chain_only_s"] = chain.seconds
        if not report.ok:
            out["audit"]["findings"] = [f.problem for f in report.findings[:5]]
        log = tree_append.transparency(engine, redis, state)
        (_, size), seconds = await timed(tree_append.catch_up(log))
        out["tree_first_build"] = {"size": size, "seconds": round(seconds, 2)}
        if export:
            url = bootstrap.redis_url()
            out["export_verify"] = export_verify(
                db_url, f"{url}{'&' if '?' in url else '?'}db={redis_db}", state
            )
            out["export_verify"]["events"] = await log_size(engine)
        first = out["append"]["units"]
        out["tree_append"] = await tree_append.compare(engine, log, first, rounds)
        out["tree_append"]["load_average_1m"] = round(os.getloadavg()[0], 2)
        return out


def _row(run: str, events, seconds, rate) -> str:
    return f"| {run} | {events:,} | {seconds} | {rate:,} |"


def table(out: dict) -> str:
    """The figures as a Markdown table."""
    n = out["events"]
    a = out["append"]
    lines = ["| run | events | seconds | events/s |", "|---|---:|---:|---:|"]
    lines += [
        _row("append, one event per transaction", a["single_events"], "", a["single_events_per_s"]),
        _row(
            "append, one stream's events per transaction",
            a["batched_events"],
            "",
            a["batched_events_per_s"],
        ),
        _row(
            "bare SELECT of every row (the limit)",
            n,
            out["bare_select"]["seconds"],
            out["bare_select"]["rows_per_s"],
        ),
        _row(
            "replay from PostgreSQL (decoded trail)",
            n,
            out["replay"]["seconds"],
            out["replay"]["events_per_s"],
        ),
        _row(
            "audit: chain only", n, out["audit_chain_only_s"], round(n / out["audit_chain_only_s"])
        ),
        _row(
            "audit: chain + projections + streams",
            n,
            out["audit"]["seconds"],
            round(n / out["audit"]["seconds"]),
        ),
    ]
    t = out["tree_first_build"]
    lines.append(
        _row(
            "tree: first build (checkpoint)",
            t["size"],
            t["seconds"],
            round(t["size"] / t["seconds"]),
        )
    )
    for shape, label in (("single", "one event"), ("streams", "one stream's events")):
        r = out["tree_append"][shape]
        lines.append(
            _row(
                f"append, {label} per tx, no tree (median)",
                r["events_per_round"],
                "",
                r["plain_median"],
            )
        )
        lines.append(
            _row(
                f"append, {label} per tx, checkpointer running (median): {r['ratio']}×",
                r["events_per_round"],
                "",
                r["tree_median"],
            )
        )
    if "export_verify" in out:
        e = out["export_verify"]
        lines.append(
            _row(
                "just export-trail", e["events"], e["export_s"], round(e["events"] / e["export_s"])
            )
        )
        lines.append(
            _row(
                "just verify-offline",
                e["events"],
                e["verify_s"],
                round(e["events"] / e["verify_s"]),
            )
        )
    return "\n".join(lines)


def tree_table(t: dict) -> str:
    """The 1,000,000-event figures as a Markdown table."""
    lines = ["| 1M-event log | events | seconds | ms p50 / p99 / max |", "|---|---:|---:|---|"]
    b, tb = t["build"], t["tree_build"]
    lines.append(
        f"| build: batched appends ({b['events_per_s']:,}/s) | {b['events']:,} | {b['seconds']} | |"
    )
    lines.append(f"| tree: first build over the log | {tb['size']:,} | {tb['seconds']} | |")
    for k in ("inclusion", "consistency"):
        p = t["proofs"][k]
        ms = f"{p['p50_ms']} / {p['p99_ms']} / {p['max_ms']}"
        lines.append(f"| {k} proof ({p['n']:,}, random) | {t['proofs']['size']:,} | | {ms} |")
    for k in ("extend_100", "extend_10000"):
        e = t[k]
        lines.append(
            f"| tree: extend + sign (checkpoint force) | {e['events']:,} | {e['seconds']} | |"
        )
    if "audit" in t:
        lines.append(f"| set-up: rebuild projections | | {t['rebuild_projections_s']} | |")
        lines.append(f"| set-up: relay to Redis | {t['relayed']:,} | {t['relay_s']} | |")
        a = t["audit"]
        lines.append(f"| just audit: chain + projections + streams | | {a['seconds']} | |")
    return "\n".join(lines)


def main() -> None:
    """Parse flags, run, print the tables and write reports/bench_events.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tree-events", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--tree-rounds", type=int, default=3, help="rounds per arm")
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--no-export", action="store_true", help="skip export-trail/verify")
    parser.add_argument("--no-tree-audit", action="store_true", help="skip the big log's audit")
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_events.json"))
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "warning")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        state = Path(tmp)
        out = asyncio.run(
            run(args.events, args.redis_db, state, args.tree_rounds, not args.no_export)
        )
        if args.tree_events:
            tree = asyncio.run(
                run_tree(
                    args.tree_events, args.redis_db, state, args.proofs, not args.no_tree_audit
                )
            )
            out["log_tree"] = tree
    from bench.common import machine

    out["machine"] = machine()
    text = table(out)
    if "log_tree" in out:
        text += "\n\n" + tree_table(out["log_tree"])
    print(text)
    print(f"audit clean: {out['audit']['ok']}  ({'; '.join(out['audit']['checks'].values())})")
    if "audit" in out.get("log_tree", {}):
        print(f"1M audit clean: {out['log_tree']['audit']['ok']}")
    print(
        f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {out['machine']['cores']} cores"
    )
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    note = f"\n\n1-minute load average at the end: {out['load_average_1m']} on {out['machine']['cores']} cores.\n"
    out_path.with_suffix(".md").write_text(text + note)
    print(f"saved {out_path} and {out_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
