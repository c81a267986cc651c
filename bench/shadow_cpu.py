"""Where a load arm's CPU went: seconds by process group (the API processes, the worker, the
embedded PostgreSQL and Redis, this load generator), and the wait for the worker's consumer
groups to catch up, so that one arm's deferred work (recording captures, storing outcomes) is
counted in that arm and not in the next one."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil

GROUPS = (("traffic.captured", "traffic-recorder"), ("shadow.outcomes", "shadow-evaluation"))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _pidfile(scratch: Path, name: str) -> int | None:
    for path in scratch.rglob(name):
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


class CpuMeter:
    """CPU seconds (user + system) used so far by each group of processes."""

    def __init__(self, scratch: Path, api_pids: set[str], worker_pid: int) -> None:
        self.pids = {
            "api": [int(p) for p in api_pids if p.isdigit()],
            "worker": [worker_pid],
            "postgres": [p for p in [_pidfile(scratch, "postmaster.pid")] if p],
            "redis": [p for p in [_pidfile(scratch, "redis.pid")] if p],
            "load generator": [os.getpid()],
        }

    def sample(self) -> dict[str, float]:
        """Each group's CPU seconds so far (children included, as they are now)."""
        out: dict[str, float] = {}
        for group, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                procs = [psutil.Process(pid)] if group == "load generator" else _tree(pid)
                for p in procs:
                    try:
                        t = p.cpu_times()
                        total += t.user + t.system
                    except psutil.Error:
                        continue
            out[group] = total
        return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """CPU seconds by group between two samples."""
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


async def drain(redis, timeout_s: float = 180.0) -> float:
    """Wait until the recorder and shadow-evaluation groups have nothing left; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all([await _idle(redis, stream, group) for stream, group in GROUPS]):
            break
        await asyncio.sleep(0.25)
    return round(time.monotonic() - started, 2)


async def _idle(redis, stream: str, group: str) -> bool:
    try:
        infos = await redis.xinfo_groups(stream)
    except Exception:  # no stream yet: nothing to drain
        return True
    for info in infos:
        info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
        name = info.get("name")
        name = name.decode() if isinstance(name, bytes) else name
        if name == group:
            return not info.get("pending") and not info.get("lag")
    return True
