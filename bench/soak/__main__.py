"""``just soak --minutes N``: the API (two processes) and two workers under a mixed load for N
minutes, sampled each minute, judged against issue 25's criteria.

Servers: DATABASE_URL and REDIS_URL when both are set, else embedded PostgreSQL and Redis in a
scratch STATE_DIR (removed afterwards). Models: bench/small_models.py's v1 and v2, cached under
.platform/cache/soak. Load (bench/soak/load.py): predictions at c=16 (three in four /predict,
the rest v2 infer), a batch job every 30 s, a registry write every 20 s (register a new version,
promote v2, roll back to v1, in turn), a gate every 60 s, feedback and reads of history and
the audit trail every 5 s, after a warm-up (one batch job and one gate run to their end). Each
minute: every process's RSS and open fds, p99, errors, jobs. After the load, every job and gate
is followed until it ends. Prints tables, writes reports/soak.json.

Exit status: 0 when every criterion held, 1 when one did not, 2 when the soak could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cli.processes import ROOT

REPORT = ROOT / "reports" / "soak.json"
MODELS = ROOT / ".platform" / "cache" / "soak"
DRAIN_S = 300.0  # how long jobs and gates get to end after the load


def log(text: str) -> None:
    """A progress line with the time."""
    print(f"{datetime.now(UTC):%H:%M:%S} soak: {text}", file=sys.stderr, flush=True)


async def run(minutes: int, concurrency: int, servers: str) -> dict:
    """Start everything, load it for ``minutes``, drain; the report."""
    from bench.common import machine
    from bench.small_models import train_small_models
    from bench.soak.load import SCHEDULE, Load
    from bench.soak.procs import API_PROCESSES, START_S, WORKERS, Fleet
    from bench.soak.stats import Tally, growth, minute_row, verdict
    from ml.datasets import load_dataset
    from settings import get_settings

    s = get_settings()
    artifacts = train_small_models(MODELS, s.files.data_dir)
    test = load_dataset("fashion_mnist_1000", data_dir=s.files.data_dir, cache_dir=MODELS)
    images, labels = test.images[:256].numpy(), test.labels[:256].numpy()
    fleet = Fleet(RATE_LIMIT_PER_S="100000", ARTIFACT_IMPORT_ROOTS=str(MODELS))
    rows: list[dict] = []
    exited: set[str] = set()
    try:
        await fleet.start()
        log(f"API at {fleet.url}, processes {fleet.pids()}")
        load = Load(fleet.url, f"soak-{uuid.uuid4().hex[:8]}", artifacts, concurrency)
        await load.set_up()
        warm_s = await load.warm_up(START_S)
        log(f"warmed up in {warm_s:.0f} s (a batch job and a gate ended); the load starts")
        tasks = [
            asyncio.create_task(load.predictions(images, labels)),
            asyncio.create_task(load.operators()),
        ]
        began = time.monotonic()
        for m in range(1, minutes + 1):
            await asyncio.sleep(max(0.0, began + 60 * m - time.monotonic()))
            tally, load.tally = load.tally, Tally()
            procs, gone = fleet.sample()
            exited.update(gone)
            rows.append(minute_row(m, tally, procs, *load.counts()))
            r = rows[-1]
            log(
                f"minute {m}: {r['predictions_per_s']:.0f} predictions/s, p99 {r['p99_ms']} ms, "
                f"5xx {r['5xx']}, 4xx {r['4xx']}, jobs {r['jobs']}, gates {r['gates']}"
            )
        load.stop.set()
        await asyncio.gather(*tasks)
        log("load stopped; following every job and gate until it ends")
        load.tally = Tally()
        drain_s = await load.drain(DRAIN_S)
        _, gone = fleet.sample()
        exited.update(gone)
        ended = {**load.ended(), "exited": sorted(exited)}
        drained = minute_row(0, load.tally, {}, *load.counts())
        ended["drain_5xx"] = drained["5xx"]
        await load.aclose()
    finally:
        fleet.stop()
    checks = verdict(rows, ended)
    from bench.soak.report import checks_json

    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"just soak --minutes {minutes}",
        "minutes_asked": minutes,
        "machine": machine(),
        "settings": {
            "api_processes": API_PROCESSES,
            "workers": WORKERS,
            "concurrency": concurrency,
            "schedule_s": {k: v[0] for k, v in SCHEDULE.items()},
            "servers": servers,
        },
        "pids": fleet.pids(),
        "minutes": rows,
        "warm_up_s": round(warm_s, 1),
        "drain_s": round(drain_s, 1),
        "ended": ended,
        "growth": growth(rows) if rows else {},
        "verdict": checks_json(checks),
        "ok": all(c.ok for c in checks),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse, set up the servers, run, print and write the report; the exit status."""
    p = argparse.ArgumentParser(prog="just soak", description=__doc__)
    p.add_argument("--minutes", type=int, default=10, help="minutes of load (default 10)")
    p.add_argument("--concurrency", type=int, default=16, help="prediction connections")
    p.add_argument("--json", type=Path, default=REPORT, help=f"default {REPORT}")
    args = p.parse_args(argv)
    if args.minutes < 1 or args.concurrency < 2:
        p.error("--minutes must be at least 1 and --concurrency at least 2")
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    given = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    os.environ["ARTIFACTS_DIR"] = str(scratch / "artifacts")
    if not given:  # the soak's own servers, whatever else runs on this machine
        os.environ["STATE_DIR"] = str(scratch)
        for var in ("DATABASE_URL", "REDIS_URL", "MIGRATION_DATABASE_URL"):
            os.environ.pop(var, None)
    servers = "DATABASE_URL and REDIS_URL" if given else "embedded, in a scratch STATE_DIR"
    from bench.soak.report import print_report

    try:
        report = asyncio.run(run(args.minutes, args.concurrency, servers))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if not given:
            import bootstrap
            from settings import get_settings

            bootstrap.stop_embedded_servers(get_settings())
        shutil.rmtree(scratch, ignore_errors=True)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
