"""A real API process and a worker, with their logs in files, for the observability tests."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from cli.processes import child_env, free_port, stop_process, wait_healthy
from tests.conftest import ROOT

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Stack:
    """Where the processes listen, write their logs and announce their metrics."""

    url: str
    state: Path
    artifacts: Path
    api_log: Path
    worker_log: Path
    targets: Path
    initial_metrics: dict[str, str]  # job -> the /metrics text right after start


def start_stack(
    root: Path, import_root: Path, servers: dict[str, str]
) -> tuple[Stack, list[subprocess.Popen]]:
    """Start ``python -m api`` and ``python -m consumers`` on ``servers`` (DATABASE_URL, REDIS_URL)."""
    from observability.exposition import targets_dir

    state, artifacts = root / "state", root / "artifacts"
    env = {
        # Own STATE_DIR (target files) and artifact store; the servers come from child_env.
        "STATE_DIR": str(state),
        "ARTIFACTS_DIR": str(artifacts),
        "LOG_LEVEL": "info",
        "ARTIFACT_IMPORT_ROOTS": f"{import_root}:{ROOT}",
        "PYTHONUNBUFFERED": "1",
        "CLAIM_IDLE_MS": "1000",
        "MAX_DELIVERIES": "2",
        "TORCH_THREADS": "1",
        "WARM_UP": "0",
        "GATE_LATENCY_ROUNDS": "4",
        **servers,
    }
    port = free_port()
    api_log, worker_log = root / "api.log", root / "worker.log"
    procs = []
    with api_log.open("wb") as a, worker_log.open("wb") as w:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=ROOT,
                stdout=a,
                env=child_env(HOST="127.0.0.1", PORT=str(port), API_WORKERS="1", **env),
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "consumers"], cwd=ROOT, stdout=w, env=child_env(**env)
            )
        )
    url = f"http://127.0.0.1:{port}"
    targets = targets_dir(state)
    try:
        asyncio.run(wait_healthy(url, procs[0], timeout_s=90))
        files = wait_for(lambda: _two_targets(targets, procs[1]), 90, "the worker's target file")
        initial = {job: httpx.get(f"http://{address}/metrics").text for job, address in files}
    except BaseException:
        for proc in procs:
            stop_process(proc)
        raise
    return Stack(url, state, artifacts, api_log, worker_log, targets, initial), procs


def _two_targets(targets: Path, worker: subprocess.Popen) -> list[tuple[str, str]] | None:
    if worker.poll() is not None:
        raise RuntimeError(f"the worker exited with code {worker.returncode}")
    found = []
    for path in targets.glob("*.json"):
        (entry,) = json.loads(path.read_text())
        found.append((entry["labels"]["job"], entry["targets"][0]))
    return found if {job for job, _ in found} == {"platform-api", "platform-worker"} else None


def wait_for(probe, timeout_s: float, what: str, interval_s: float = 0.25):
    """Call ``probe`` until it returns something truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def png_b64(image: np.ndarray) -> str:
    """A uint8 28x28 image as base64 PNG."""
    buf = io.BytesIO()
    Image.fromarray(image).convert("L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def log_lines(path: Path) -> list[dict]:
    """The JSON log lines a process wrote so far."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written
    return out


async def register(client: httpx.AsyncClient, name: str, version: str, path, promote: bool):
    """Register (and promote) a version over HTTP."""
    r = await client.post(
        f"/models/{name}/versions", json={"model_version": version, "artifact_path": str(path)}
    )
    assert r.status_code == 201, r.text
    if promote:
        r = await client.post(f"/models/{name}/versions/{version}/promote")
        assert r.status_code == 200, r.text


async def run_job(client: httpx.AsyncClient, name: str, shard_size: int, timeout_s: float = 120):
    """Submit a batch job over HTTP and wait for its end; (submit response, final status)."""
    submitted = await client.post(
        "/batch/submit",
        json={
            "model_name": name,
            "dataset_id": "fashion_mnist_1000",
            "config": {"batch_size": 250, "shard_size": shard_size},
        },
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + timeout_s
    while True:
        status = (await client.get(f"/batch/status/{job_id}")).json()
        if status["status"] in TERMINAL:
            return submitted, status
        assert time.monotonic() < deadline, f"job {job_id} still {status['status']}"
        await asyncio.sleep(0.25)
