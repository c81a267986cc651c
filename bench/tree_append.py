"""Append throughput with the Merkle tree maintained vs without it, interleaved in one database.

Arm "plain": appends alone. Arm "tree": the same appends while the checkpointer task runs in
the same event loop, as in the API and worker processes (every 1 s: extend the tree, sign a
checkpoint every CHECKPOINT_EVERY_EVENTS). Rounds alternate plain, tree, plain, tree…; each
tree round starts with the tree caught up, so it only follows its own round's appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.event_workload import PER_UNIT, append_single, append_streams, timed
from storage.audit.transparency import LogPolicy, TransparencyLog

ORIGIN = "bench/event-log"


def transparency(engine: AsyncEngine, redis, state: Path, every: int = 100) -> TransparencyLog:
    """A TransparencyLog on the scratch database, its key under ``state``."""
    policy = LogPolicy(key_file=state / "audit-signing.key", origin=ORIGIN, every=every)
    return TransparencyLog(engine, redis, policy)


async def catch_up(log: TransparencyLog) -> tuple[int, int]:
    """Extend the tree over the whole log and sign it; (rounds of extension, size)."""
    passes = 0
    while True:
        passes += 1
        made = await log.checkpoint(force=True)
        if made is None:  # nothing new: the tree covers the log
            return passes, await log.tree_size()


async def _checkpointer(log: TransparencyLog, stop: asyncio.Event, signed: list) -> None:
    """bootstrap.tasks.build_checkpointer's loop: run_once, then wait 1 s (or stop)."""
    while not stop.is_set():
        made = await log.checkpoint()
        if made is not None:
            signed.append(made.size)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _round(engine, log, shape: str, first: int, units: int, tree: bool) -> dict:
    append = append_single if shape == "single" else append_streams
    signed: list[int] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_checkpointer(log, stop, signed)) if tree else None
    n, seconds = await timed(append(engine, first, units))
    if task is not None:
        stop.set()
        await task
    return {"events": n, "seconds": seconds, "checkpoints": len(signed)}


async def compare(engine: AsyncEngine, log: TransparencyLog, first: int, rounds: int) -> dict:
    """Both shapes, ``rounds`` rounds per arm, alternating; medians and the ratio."""
    await catch_up(log)
    out: dict = {}
    shapes = {"single": 30, "streams": 300}  # units per round: about 1,000 and 10,000 events
    for shape, units in shapes.items():
        runs: dict[str, list[dict]] = {"plain": [], "tree": []}
        for _ in range(rounds):
            for arm in ("plain", "tree"):
                if arm == "tree":
                    await catch_up(log)
                runs[arm].append(await _round(engine, log, shape, first, units, arm == "tree"))
                first += units
        rates = {a: [r["events"] / r["seconds"] for r in rs] for a, rs in runs.items()}
        med = {a: statistics.median(v) for a, v in rates.items()}
        out[shape] = {
            "events_per_round": units * PER_UNIT,
            "rounds": rounds,
            "plain_events_per_s": [round(v) for v in rates["plain"]],
            "tree_events_per_s": [round(v) for v in rates["tree"]],
            "plain_median": round(med["plain"]),
            "tree_median": round(med["tree"]),
            "ratio": round(med["tree"] / med["plain"], 3),
            "checkpoints_signed": [r["checkpoints"] for r in runs["tree"]],
        }
    out["next_unit"] = first
    return out
