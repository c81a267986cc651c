"""The verifiable log's figures for `just bench-events`: a 1,000,000-event log's tree, its
inclusion and consistency proofs from PostgreSQL, its extension, `just audit` over it, and
`just export-trail` + `just verify-offline` run as a user runs them.

The log is built with batched appends (many streams per transaction through
storage.event_store.append), in its own scratch database, then relayed to an empty Redis
database index and projected, so that the audit has everything a live platform has.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.event_workload import PER_UNIT, append_streams, scratch, timed
from bench.tree_append import ORIGIN, catch_up, transparency
from storage.audit.auditor import Auditor
from storage.audit.transparency import TransparencyLog
from storage.projections import rebuild_projections
from storage.streams.relay import Relay

ROOT = Path(__file__).resolve().parent.parent
PER_TX = 100  # units (about 3,400 events, 300 streams) per transaction while building


def say(what: str) -> None:
    """Progress on stderr (the 1M phases take minutes)."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def _ms(samples: list[float]) -> dict:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {
        "n": len(s),
        "p50_ms": round(pick(0.50) * 1000, 2),
        "p99_ms": round(pick(0.99) * 1000, 2),
        "max_ms": round(s[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(s) * 1000, 2),
    }


async def proofs(log: TransparencyLog, size: int, n: int, seed: int = 23) -> dict:
    """``n`` inclusion proofs (random position, random size ≥ it) and ``n`` consistency proofs."""
    rng = random.Random(seed)
    inc, con = [], []
    for _ in range(n):
        position = rng.randint(1, size)  # positions are 1..size here: one sequence, no gaps
        at = rng.randint(position, size)
        started = time.perf_counter()
        index, _, proof, _ = await log.inclusion(position, at)
        inc.append(time.perf_counter() - started)
        assert index == position - 1 and (proof or at == 1)
        old = rng.randint(1, size - 1)
        new = rng.randint(old + 1, size)
        started = time.perf_counter()
        await log.consistency(old, new)
        con.append(time.perf_counter() - started)
    return {"inclusion": _ms(inc), "consistency": _ms(con)}


async def extension(engine: AsyncEngine, log: TransparencyLog, first: int, units: int) -> dict:
    """Append ``units`` more units, then time checkpoint(force=True) over them."""
    n = await append_streams(engine, first, units, PER_TX)
    made, seconds = await timed(log.checkpoint(force=True))
    assert made is not None
    return {"events": n, "seconds": round(seconds, 3), "size": made.size}


async def audit_all(engine: AsyncEngine, redis, log: TransparencyLog) -> dict:
    """Project and relay the log (set-up, timed too), then `just audit`'s full run (the
    checkpoints' signatures checked with the log's key, as `just audit` does)."""
    out: dict = {}
    say("rebuilding projections")
    _, out["rebuild_projections_s"] = await timed(rebuild_projections(engine))
    say("relaying to Redis")
    published, out["relay_s"] = await timed(Relay(engine, redis, batch=2000).publish_once())
    out["relayed"] = published
    say("auditing")
    cpu = time.process_time()
    report = await Auditor(engine, redis, lambda: (log.signer.verifier(), [])).run()
    out["audit"] = {
        "seconds": report.seconds,
        "ok": report.ok,
        "checks": report.checks,
        "cpu_seconds": round(time.process_time() - cpu, 3),
    }
    if not report.ok:
        out["audit"]["findings"] = [f.problem for f in report.findings[:5]]
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


async def run_tree(events: int, redis_db: int, state: Path, n_proofs: int, audit: bool) -> dict:
    """A log of about ``events`` events, its tree, proofs, extension and audit."""
    units = max(1, events // PER_UNIT)
    async with scratch(redis_db, "bench_log_tree") as (engine, redis, _):
        out: dict = {}
        say(f"building a log of {units * PER_UNIT:,} events")
        n, seconds = await timed(append_streams(engine, 0, units, PER_TX))
        out["build"] = {
            "events": n,
            "seconds": round(seconds, 1),
            "events_per_s": round(n / seconds),
        }
        out["build"]["load_average_1m"] = round(os.getloadavg()[0], 2)
        log = transparency(engine, redis, state)
        say("building its tree")
        (passes, size), seconds = await timed(catch_up(log))
        out["tree_build"] = {"size": size, "seconds": round(seconds, 2), "checkpoints": passes - 1}
        out["tree_build"]["events_per_s"] = round(size / seconds)
        say("proofs")
        out["proofs"] = await proofs(log, size, n_proofs)
        out["proofs"]["size"] = size
        out["proofs"]["load_average_1m"] = round(os.getloadavg()[0], 2)
        out["extend_100"] = await extension(engine, log, units, 3)
        out["extend_10000"] = await extension(engine, log, units + 3, 300)
        if audit:
            out.update(await audit_all(engine, redis, log))
        return out


def _just(*args: str, env: dict, stdout=None) -> float:
    """Run one `just` recipe as a user would; seconds it took (a failure raises)."""
    exe = shutil.which("just") or str(ROOT / ".venv" / "bin" / "just")
    started = time.perf_counter()
    done = subprocess.run(
        [exe, *args], cwd=ROOT, env=env, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        err = (done.stderr or b"").decode(errors="replace")[-600:]
        raise RuntimeError(f"just {args[0]} exited {done.returncode}: {err}")
    return seconds


def export_verify(db_url: str, redis_url: str, state: Path) -> dict:
    """`just export-trail FILE` then `just verify-offline FILE --key KEYFILE`, as subprocesses."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "STATE_DIR": str(state),
        "AUDIT_SIGNING_KEY_FILE": str(state / "audit-signing.key"),
        "LOG_ORIGIN": ORIGIN,
    }
    bundle, key = state / "trail.json", state / "log.pub"
    with key.open("wb") as f:
        _just("audit-key", env=env, stdout=f)
    export_s = _just("export-trail", str(bundle), env=env)
    verify_s = _just("verify-offline", str(bundle), "--key", str(key), env=env)
    return {
        "export_s": round(export_s, 2),
        "verify_s": round(verify_s, 2),
        "total_s": round(export_s + verify_s, 2),
        "bundle_mib": round(bundle.stat().st_size / 2**20, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


async def log_size(engine: AsyncEngine) -> int:
    """Rows in the log."""
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM event_log")))
