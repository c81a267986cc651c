"""Shared pieces of the benchmarks: machine description, the served model, a local API."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def running_api(env_overrides: dict[str, str] | None = None):
    """Start ``python -m api`` on a free port against the same servers; yield its base URL."""
    import bootstrap

    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning"}
    env["DATABASE_URL"] = env.get("DATABASE_URL") or bootstrap.database_url()
    env["REDIS_URL"] = env.get("REDIS_URL") or bootstrap.redis_url()
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_overrides or {})
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the API exited with code {proc.returncode}")
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not become healthy in 60s")
                await asyncio.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def scrape_histogram(url: str, name: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram across its label sets."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        text = (await client.get("/metrics")).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count
