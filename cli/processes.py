"""Child processes (API, workers) started on the same servers as the current process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def child_env(**overrides: str) -> dict[str, str]:
    """This environment plus the resolved server URLs, so children share the embedded servers."""
    import bootstrap

    # The project first, then whatever path this process was given (e.g. extra site folders).
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "LOG_LEVEL": "warning"}
    env["DATABASE_URL"] = env.get("DATABASE_URL") or bootstrap.database_url()
    env["REDIS_URL"] = env.get("REDIS_URL") or bootstrap.redis_url()
    env.update(overrides)
    return env


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(**env_overrides: str) -> subprocess.Popen:
    """``python -m consumers`` on the same servers."""
    return subprocess.Popen(
        [sys.executable, "-m", "consumers"], cwd=ROOT, env=child_env(**env_overrides)
    )


async def wait_healthy(
    url: str, proc: subprocess.Popen, processes: int = 1, timeout_s: float = 60
) -> set[str]:
    """Poll /health on fresh connections until ``processes`` distinct server pids answered."""
    seen: set[str] = set()
    # No keep-alive: each probe is a new connection, which SO_REUSEPORT may hand to any process.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as client:
        deadline = time.monotonic() + timeout_s
        while len(seen) < processes:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            try:
                response = await client.get("/health")
                if response.status_code == 200:
                    seen.add(response.headers.get("x-server-pid", "?"))
            except httpx.TransportError:
                pass
            if len(seen) >= processes:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{processes - len(seen)} of {processes} server processes did not become "
                    f"healthy in {timeout_s:.0f}s"
                )
            await asyncio.sleep(0.05 if seen else 0.2)
    return seen


def stop_process(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM, wait, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def running_api(workers: int = 1, **env_overrides: str) -> AsyncIterator[str]:
    """Start ``python -m api`` with ``workers`` processes on a free port; yield its base URL.

    Returns once every process answers /health (each response names its pid).
    """
    port = free_port()
    env = child_env(HOST="127.0.0.1", PORT=str(port), API_WORKERS=str(workers), **env_overrides)
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, proc, workers, timeout_s=60 + 15 * workers)
        yield url
    finally:
        stop_process(proc)
