"""Real processes for the canary e2e tests: an API process, worker processes (killable), the
`just canary` CLI, and a traffic driver that sends Fashion-MNIST test images to /predict and their
true labels to POST /feedback, as clients whose labels come back later would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from cli.processes import free_port, stop_process, wait_healthy
from tests.conftest import ROOT
from tests.e2e.test_inference_http import png_b64

JUST = Path(sys.executable).parent / "just"
FEEDBACK_EVERY_S = 0.3
FEEDBACK_BATCH = 500
UNKNOWN_FOR_S = 30.0  # a captured request reaches PostgreSQL well within this (a worker's restart)


@dataclass
class Stack:
    """An API process and worker processes on one isolated database and Redis index."""

    env: dict[str, str]
    url: str
    logs: Path
    api: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    async def start_api(self) -> None:
        """``python -m api`` (one process), returns once it answers /health."""
        out = (self.logs / "api.log").open("ab")
        self.api = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "api"], cwd=ROOT, env=self.env, stdout=out, stderr=out
        )
        await wait_healthy(self.url, self.api, timeout_s=120)

    def start_worker(self) -> subprocess.Popen:
        """``python -m consumers`` with every group (the canary's evaluator among them)."""
        out = (self.logs / f"worker-{len(self.workers)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumers"], cwd=ROOT, env=self.env, stdout=out, stderr=out
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """kill -9: no shutdown, no ack of what it held."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        """Stop every process this stack started."""
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is None:
                stop_process(proc)

    def tail(self) -> str:
        """The end of the processes' logs, for a failure message."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def stack_env(db_url: str, redis_url: str, artifacts: Path, roots: list[Path], port: int):
    """The processes' environment: the isolated servers, a fast claim of a dead worker's
    entries, one torch thread each (2 cores are shared by the API, the worker and the tests)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "ARTIFACTS_DIR": str(artifacts),
        "ARTIFACT_IMPORT_ROOTS": ":".join(map(str, roots)),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_WORKERS": "1",
        "TORCH_THREADS": "1",
        "WARM_UP": "0",
        "LOG_LEVEL": "warning",
        "CLAIM_IDLE_MS": "2000",  # a killed worker's pending entries are claimed after 2 s
    }
    for name in ("API_KEYS", "ACTOR", "METRICS_PORT", "COLUMNS"):
        env.pop(name, None)
    return env


def new_port() -> int:
    """A free TCP port."""
    return free_port()


def canary_cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """`just canary ...` in the background (it follows the canary until it ends)."""
    return subprocess.Popen(
        [str(JUST), "canary", *args],
        cwd=ROOT,
        env={**env, "PATH": f"{JUST.parent}:{env['PATH']}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class Traffic:
    """Sends test images to /predict (no version named: the canary routes) and, for each request
    the candidate answered (those are captured), the true label to POST /feedback."""

    client: httpx.AsyncClient
    model: str
    candidate: str
    pngs: list[str]
    labels: np.ndarray
    tag: str
    served: dict[str, str] = field(default_factory=dict)  # request id -> version
    right: dict[str, bool] = field(default_factory=dict)
    labelled: set[str] = field(default_factory=set)
    _pending: list[tuple[str, int, float]] = field(default_factory=list)  # id, label, since
    _sent: int = 0

    async def one(self) -> str:
        """One /predict; the version that answered."""
        i = self._sent
        self._sent += 1
        rid = f"{self.tag}-{i}"
        k = i % len(self.pngs)
        r = await self.client.post(
            "/predict",
            json={"model_name": self.model, "image_b64": self.pngs[k]},
            headers={"X-Request-Id": rid},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["request_id"] == rid
        version = body["model_version"]
        self.served[rid] = version
        self.right[rid] = body["prediction"] == int(self.labels[k])
        if version == self.candidate:
            self._pending.append((rid, int(self.labels[k]), time.monotonic()))
        return version

    async def feedback(self) -> None:
        """Label what is pending; ids the recorder has not stored yet (404) wait for next time,
        but not for ever: a request the candidate answered is always captured."""
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), FEEDBACK_BATCH):
            self._pending += await self._label(batch[start : start + FEEDBACK_BATCH])
        now = time.monotonic()
        stuck = [rid for rid, _, since in self._pending if now - since > UNKNOWN_FOR_S]
        assert not stuck, f"still unknown to /feedback after {UNKNOWN_FOR_S:.0f} s: {stuck[:5]}"

    async def _label(self, batch: list[tuple[str, int, float]]) -> list[tuple[str, int, float]]:
        """POST the batch (all or none); on a 404, each half on its own: the unknown ones."""
        if not batch:
            return []
        body = [{"request_id": rid, "label": label} for rid, label, _ in batch]
        r = await self.client.post("/feedback", json=body)
        if r.status_code == 200:
            self.labelled.update(rid for rid, _, _ in batch)
            return []
        assert r.status_code == 404, r.text
        if len(batch) == 1:
            return batch
        half = len(batch) // 2
        return await self._label(batch[:half]) + await self._label(batch[half:])

    def accuracy(self, version: str) -> float:
        """The share of right answers among the requests ``version`` answered."""
        ids = [i for i, v in self.served.items() if v == version]
        assert ids, f"{version} answered no request"
        return sum(self.right[i] for i in ids) / len(ids)

    async def run(
        self,
        done: Callable[[], Awaitable[bool]],
        what: str,
        timeout_s: float = 150,
        senders: int = 3,
        details: Callable[[], str] = lambda: "",
    ) -> None:
        """Send traffic and feedback until ``done()``; fails after ``timeout_s``."""
        stop = asyncio.Event()

        async def send() -> None:
            while not stop.is_set():
                await self.one()

        async def label() -> None:
            while not stop.is_set():
                await asyncio.sleep(FEEDBACK_EVERY_S)
                await self.feedback()

        tasks = [asyncio.create_task(send()) for _ in range(senders)]
        tasks.append(asyncio.create_task(label()))
        deadline = time.monotonic() + timeout_s
        try:
            while not await done():
                for t in tasks:
                    if t.done():
                        t.result()  # a sender's failed assertion ends the test here
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out after {timeout_s:.0f} s waiting for {what}: "
                        f"{len(self.served)} sent, {len(self.labelled)} labelled\n{details()}"
                    )
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]


def encode(images: np.ndarray) -> list[str]:
    """PNG base64 of each image (once: encoding is not what is tested)."""
    return [png_b64(im) for im in images]


async def events(client: httpx.AsyncClient, model: str, event_type: str) -> list[dict]:
    """The model's events of one type from GET /events, with their payloads."""
    out, after = [], 0
    while True:
        r = await client.get(
            "/events", params={"model": model, "type": event_type, "after": after, "limit": 1000}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["events"]
        if page["next_after"] is None:
            return out
        after = page["next_after"]


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            with contextlib.suppress(ValueError):
                total += float(value)
    return total
