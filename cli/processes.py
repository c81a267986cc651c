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

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning"}
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


@asynccontextmanager
async def running_api(**env_overrides: str) -> AsyncIterator[str]:
    """Start ``python -m api`` on a free port, wait until healthy, yield its base URL."""
    port = free_port()
    env = child_env(HOST="127.0.0.1", PORT=str(port), **env_overrides)
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
