"""The servers ``just bench-predict`` loads beside ours: the baseline, the HTTP floor, LitServe;
and the API's processes' memory (PSS), read from outside them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bench.common import ROOT, child_env, free_port


@asynccontextmanager
async def running_module(module: str, *args: str, processes: int = 1, timeout_s: float = 120):
    """Start ``python -m module --port P *args`` on a free port; yield its URL once healthy."""
    from cli.processes import wait_healthy

    port = free_port()
    cmd = [sys.executable, "-m", module, "--port", str(port), *args]
    # In a session of its own: LitServe's main process outlives a SIGTERM, and its workers
    # would outlive it; the whole group is stopped (bench-predict must leave nothing behind).
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), start_new_session=True)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc, processes, timeout_s=timeout_s)
        yield url
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of it is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGTERM:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
    proc.wait()


def running_baseline(artifact: Path, version: str):
    """bench.baseline_server: one request, one decode, one forward, no batching."""
    return running_module(
        "bench.baseline_server", "--artifact", str(artifact), "--model_version", version
    )


def running_floor(cores: int):
    """bench.http_floor with one uvicorn process per core."""
    return running_module("bench.http_floor", "--workers", str(cores), processes=cores)


def running_framework_floor(cores: int):
    """bench.framework_floor (the HTTP floor with Litestar) with one uvicorn process per core."""
    return running_module("bench.framework_floor", "--workers", str(cores), processes=cores)


def running_litserve(artifact: Path, cores: int, max_batch: int, graph: str, device: str):
    """bench.litserve_peer: one worker per core, dynamic batching up to ``max_batch``."""
    accelerator = "cuda" if device.startswith("cuda") else "cpu"
    return running_module(
        "bench.litserve_peer",
        "--artifact",
        str(artifact),
        "--workers",
        str(cores),
        "--max_batch",
        str(max_batch),
        "--graph",
        graph,
        "--accelerator",
        accelerator,
        timeout_s=240,
    )


def memory_available() -> bool:
    """Whether bench/process_memory.py (PSS from /proc) is here to measure with."""
    try:
        import bench.process_memory  # noqa: F401
    except ImportError:
        return False
    return True


def v2_binary_available() -> bool:
    """Whether bench/v2_binary.py (v2 infer requests with binary tensors) is here."""
    try:
        import bench.v2_binary  # noqa: F401
    except ImportError:
        return False
    return True


async def api_memory(url: str, processes: int) -> list[dict]:
    """PSS of the API's processes (the supervisor and each serving process), in MB.

    The serving processes name themselves in each response's x-server-pid; the supervisor is
    their parent, unless one process serves alone (its parent is this benchmark).
    """
    from bench.process_memory import parent, tree_pss

    limits = httpx.Limits(max_keepalive_connections=0)
    pids: set[int] = set()
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as client:
        for _ in range(40 * processes):
            response = await client.get("/health")
            pids.add(int(response.headers.get("x-server-pid", "0")))
            if len(pids) >= processes:
                break
    served = min(pids)
    root = served if parent(served) == os.getpid() else parent(served)
    return tree_pss(root)
