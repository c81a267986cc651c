"""``just chaos [SCENARIO...]``: build the hosts, run the scenarios, print the table, write JSON.

Exit status: 0 when every scenario kept its promises, 1 when one did not, 2 when the machine
cannot build the cluster (not root, no ``ip netns``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos import net as network
from bench.chaos.cluster import ROOT, Cluster
from bench.chaos.control import promotion_cut_from_redis, relay_leader_partitioned
from bench.chaos.driver import Driver, diagnose
from bench.chaos.scenarios import (
    Context,
    Outcome,
    lossy_links,
    partition_worker,
    restart_servers,
)
from bench.small_models import train_small_models

SCENARIOS = {
    "partition": partition_worker,
    "loss": lossy_links,
    "promotion": promotion_cut_from_redis,
    "restart": restart_servers,
    "leader": relay_leader_partitioned,
}

REPORT = ROOT / "reports" / "chaos.json"


def table(outcomes: list[Outcome], total_s: float) -> None:
    """The results as a rich table."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"just chaos: {len(outcomes)} scenarios in {total_s:.0f}s")
    for column in ("scenario", "requests and shards", "lost", "duplicated", "converged in"):
        t.add_column(column, justify="right" if column != "scenario" else "left")
    t.add_column("audit clean")
    t.add_column("metrics identical")
    t.add_column("ok")
    for o in outcomes:
        t.add_row(
            o.scenario,
            o.requests,
            str(o.lost),
            str(o.duplicated),
            f"{o.converge_s:.1f}s",
            "yes" if o.audit_clean else "NO",
            "yes" if o.identical else "NO",
            "yes" if o.ok else "NO",
        )
    Console(width=150).print(t)
    for o in outcomes:
        for note in o.notes:
            print(f"  {o.scenario}: {note}")


async def run(names: list[str], state: Path) -> tuple[list[Outcome], float]:
    """Build the cluster, run the clean job, then each scenario; tear everything down."""
    net = network.Network()
    cluster = Cluster(net, state)
    driver: Driver | None = None
    try:
        artifacts = train_small_models(state / "models")
        net.build()
        cluster.start()
        driver = Driver(cluster)
        await driver.wait_api()
        await driver.register(artifacts)
        start = time.monotonic()
        job = await driver.submit()
        await driver.wait_job(job)
        clean = await driver.facts(job)
        if clean["status"] != "succeeded":
            raise RuntimeError(f"the clean run did not succeed: {clean}")
        ctx = Context(net, cluster, driver, clean, time.monotonic() - start)
        outcomes = []
        for name in names:
            print(f"chaos: {name} …", file=sys.stderr, flush=True)
            try:
                outcomes.append(await SCENARIOS[name](ctx))
            except (RuntimeError, OSError) as exc:  # a scenario that broke is a row, not a stop
                print(await diagnose(driver), file=sys.stderr)
                outcomes.append(Outcome(name, "-", -1, -1, -1.0, False, False, [f"FAIL: {exc}"]))
        return outcomes, ctx.clean_s
    finally:
        if driver is not None:
            await driver.aclose()
        cluster.close()
        net.teardown()


def _interrupted(signum: int, _frame) -> None:
    # Turn SIGTERM into the KeyboardInterrupt that unwinds through run()'s cleanup.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Parse the scenario names, run them, print and write the report."""
    parser = argparse.ArgumentParser(prog="just chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--json", type=Path, default=REPORT, help=f"default {REPORT}")
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    try:
        network.check_capable()
    except network.ChaosUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)
    state = Path(os.environ.get("STATE_DIR", ROOT / ".platform")) / "chaos"
    began = time.monotonic()
    try:
        outcomes, clean_s = asyncio.run(run(names, state))
    except KeyboardInterrupt:
        print("chaos: interrupted; the hosts are removed", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = time.monotonic() - began
    table(outcomes, total)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(total, 1),
        "clean_job_s": round(clean_s, 1),
        "command": "just chaos " + " ".join(names),
        "scenarios": [{**vars(o), "ok": o.ok} for o in outcomes],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
