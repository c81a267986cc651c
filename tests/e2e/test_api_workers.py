"""API_WORKERS=2: two real API processes on one port both hot-swap to a new prod, no request fails."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.process_memory import children, imports_torch
from cli.processes import free_port, stop_process, wait_healthy
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


def _png_b64(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def api_processes(test_settings):
    """``python -m api`` with API_WORKERS=2 on the test servers and artifact store."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": test_settings.database.url,
        "REDIS_URL": test_settings.redis.url,
        "ARTIFACTS_DIR": str(test_settings.files.artifacts_dir),
        "ARTIFACT_IMPORT_ROOTS": ":".join(map(str, test_settings.files.artifact_import_roots)),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_WORKERS": "2",
        "TORCH_THREADS": "1",
        "WARM_UP": "0",  # other tests' prod models live in other tests' artifact stores
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)
    yield proc, f"http://127.0.0.1:{port}"
    stop_process(proc)
    assert proc.returncode == 0, f"the supervisor exited with {proc.returncode}"


async def test_two_processes_both_serve_the_new_prod_without_a_failed_request(
    api_processes, model_name, trained_artifacts
) -> None:
    proc, url = api_processes
    pids = await wait_healthy(url, proc, processes=2, timeout_s=120)
    assert len(pids) == 2 and "?" not in pids
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    body = {"model_name": model_name, "image_b64": _png_b64(image)}
    async with httpx.AsyncClient(base_url=url, timeout=30) as admin:
        for version in ("v1", "v2"):
            r = await admin.post(
                f"/models/{model_name}/versions",
                json={"model_version": version, "artifact_path": str(trained_artifacts[version])},
            )
            assert r.status_code == 201, r.text
        r = await admin.post(f"/models/{model_name}/versions/v1/promote")
        assert r.status_code == 200, r.text

    answers: list[tuple[int, str, str]] = []  # (status, pid, model_version or error text)
    stop = asyncio.Event()

    async def load() -> None:
        # No keep-alive: every request is a new connection, which the kernel may give either process.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            while not stop.is_set():
                r = await client.post("/predict", json=body)
                version = r.json().get("model_version") if r.status_code == 200 else r.text
                answers.append((r.status_code, r.headers.get("x-server-pid", "?"), version))

    def served(version: str) -> set[str]:
        return {pid for code, pid, v in answers if code == 200 and v == version}

    async def until(condition, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(load()) for _ in range(4)]
    try:
        await until(lambda: served("v1") == pids, "both processes served v1")
        async with httpx.AsyncClient(base_url=url, timeout=30) as admin:
            r = await admin.post(f"/models/{model_name}/versions/v2/promote")
            assert r.status_code == 200, r.text
        await until(lambda: served("v2") == pids, "both processes served v2")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    failed = [a for a in answers if a[0] != 200]
    assert not failed, failed[:3]
    for pid in pids:
        versions = [v for _, p, v in answers if p == pid]
        first_v2 = versions.index("v2")
        # After its swap a process never answers with the old version again (allowing the
        # requests that had already resolved v1 when it switched).
        assert set(versions[first_v2 + 4 :]) <= {"v2"}, (pid, versions[first_v2:][:20])


def _activity_of(pid: str) -> tuple[str, str]:
    """(slot, shared file) an API process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return environ["API_ACTIVITY_SLOT"], environ["API_ACTIVITY_FILE"]


def _size(path: str) -> int | None:
    return Path(path).stat().st_size if Path(path).exists() else None


async def test_the_processes_share_one_activity_file_removed_at_stop(api_processes) -> None:
    """Each process has its own slot in one shared file (ml.threads.PEERS), gone after a stop."""
    proc, url = api_processes
    pids = await wait_healthy(url, proc, processes=2, timeout_s=120)
    seen = dict(_activity_of(pid) for pid in pids)
    assert sorted(seen) == ["0", "1"] and len(set(seen.values())) == 1
    path = next(iter(seen.values()))
    assert _size(path) == 16  # one 8-byte slot per process
    stop_process(proc)
    assert proc.returncode == 0 and _size(path) is None


async def test_only_the_serving_processes_import_torch(api_processes) -> None:
    """The supervisor serves nothing: torch (and the app) are its children's alone."""
    proc, url = api_processes
    pids = await wait_healthy(url, proc, processes=2, timeout_s=120)
    assert {str(pid) for pid in children(proc.pid)} == pids  # the check's child is gone
    assert all(imports_torch(int(pid)) for pid in pids)
    assert not imports_torch(proc.pid)
