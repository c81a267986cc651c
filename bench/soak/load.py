"""The soak's mixed load: predictions (/predict and v2 infer) from a closed loop of connections,
and the operators' traffic on a schedule: batch jobs, registry writes (register, promote, roll
back), gates, feedback, reads of history and the audit trail, and following every job and gate
until it ends. Every answer is counted in the current minute's ``Tally``."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import httpx
import numpy as np

from bench.client import Connection, HttpError
from bench.load_requests import build_requests
from bench.shadow_canary import Traffic
from bench.soak.stats import NO_ANSWER, Jobs, Tally

DATASET = "fashion_mnist_1000"
JOB_DONE = {"succeeded", "failed", "cancelled"}
GATE_DONE = {"passed", "failed", "errored", "inconclusive"}
FEEDBACK_EVERY = 10  # one /predict answer in this many gets its true label back
# (seconds between runs, first run after) of each operator task
SCHEDULE = {
    "batch": (30, 5),
    "registry": (20, 10),
    "gate": (60, 15),
    "reads": (5, 2),
    "feedback": (5, 4),
    "follow": (5, 3),
}


class Load:
    """One soak's traffic against the API at ``url``; ``tally`` is swapped each minute."""

    def __init__(self, url: str, model: str, artifacts: dict[str, Path], concurrency: int) -> None:
        self.url, self.model, self.artifacts = url, model, artifacts
        self.concurrency = concurrency
        self.tally = Tally()
        self.stop = asyncio.Event()
        self.http = httpx.AsyncClient(base_url=url, timeout=60)
        self.jobs: dict[str, str | None] = {}  # job id -> how it ended (None: not yet)
        self.gates: dict[str, str | None] = {}
        self.answered: collections.deque = collections.deque(maxlen=5000)  # (rid, label, when)
        self.feedback = collections.Counter()  # labelled, not captured
        self.registry_step = 0
        self.registered = 0

    # --- counting -------------------------------------------------------------------------
    def counts(self) -> tuple[Jobs, Jobs]:
        """Jobs and gates submitted and finished so far."""

        def of(d: dict) -> Jobs:
            return Jobs(len(d), sum(v is not None for v in d.values()))

        return of(self.jobs), of(self.gates)

    async def call(self, kind: str, method: str, path: str, **kw) -> httpx.Response | None:
        """One operator request, counted; None when no answer came."""
        start = time.perf_counter()
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.HTTPError:
            self.tally.add(kind, NO_ANSWER, time.perf_counter() - start)
            return None
        self.tally.add(kind, r.status_code, time.perf_counter() - start)
        return r

    # --- set-up ---------------------------------------------------------------------------
    async def set_up(self) -> None:
        """v1 and v2 registered, v1 prod, every request captured up to 20/s per API process."""
        for version, path in self.artifacts.items():
            await self._must("POST", f"/models/{self.model}/versions", json=_version(version, path))
        await self._must("POST", f"/models/{self.model}/versions/v1/promote")
        policy = {"fraction": 1.0, "max_per_s": 20, "reason": "soak feedback"}
        await self._must("PUT", f"/models/{self.model}/capture-policy", json=policy)

    async def warm_up(self, timeout_s: float) -> float:
        """A batch job and a gate run to their end before the clock starts; seconds taken.

        On a busy machine the workers can take minutes to import, connect and load their
        models; counted in the first minutes, that start-up would read as growth.
        """
        start = time.monotonic()
        job = {"model_name": self.model, "model_version": "v1", "dataset_id": DATASET}
        job_id = (await self._must("POST", "/batch/submit", json=job))["job_id"]
        gate = {"model_name": self.model, "candidate_version": "v2", "baseline_version": "v1"}
        gate_id = (await self._must("POST", "/gates", json={**gate, "dataset_id": DATASET}))[
            "gate_id"
        ]
        while time.monotonic() - start < timeout_s:
            j = await self._must("GET", f"/batch/status/{job_id}")
            g = await self._must("GET", f"/gates/{gate_id}")
            if j["status"] in JOB_DONE and g["status"] in GATE_DONE:
                if j["status"] != "succeeded":
                    raise RuntimeError(f"the warm-up job ended {j['status']}")
                return time.monotonic() - start
            await asyncio.sleep(1)
        raise RuntimeError(f"the warm-up job and gate did not end in {timeout_s:.0f} s")

    async def _must(self, method: str, path: str, **kw) -> dict:
        r = await self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    # --- predictions ----------------------------------------------------------------------
    async def predictions(self, images: np.ndarray, labels: np.ndarray) -> None:
        """``concurrency`` connections until stopped: three in four /predict, the rest v2 infer."""
        traffic = Traffic(self.url, self.model, images, labels)
        v2 = build_requests(self.url, "v2", self.model, images)
        n_v2 = max(1, self.concurrency // 4)
        loops = [self._predict(traffic, i) for i in range(self.concurrency - n_v2)]
        loops += [self._infer(v2, i) for i in range(n_v2)]
        await asyncio.gather(*loops)

    async def _predict(self, traffic: Traffic, lane: int) -> None:
        conn, n = Connection(self.url), 0
        try:
            while not self.stop.is_set():
                n += 1
                rid = f"soak-{lane}-{n}"
                request, label = traffic.request(rid)
                status = await self._send(conn, "predict", request)
                if status == 200 and n % FEEDBACK_EVERY == 0:
                    self.answered.append((rid, label, time.monotonic()))
        finally:
            await conn.close()

    async def _infer(self, requests: list[bytes], lane: int) -> None:
        conn, n = Connection(self.url), lane
        try:
            while not self.stop.is_set():
                n += 1
                await self._send(conn, "v2", requests[n % len(requests)])
        finally:
            await conn.close()

    async def _send(self, conn: Connection, kind: str, request: bytes) -> int:
        start = time.perf_counter()
        try:
            status, _ = await conn.send(request)
        except (OSError, HttpError, asyncio.IncompleteReadError):
            status = NO_ANSWER
        self.tally.add(kind, status, time.perf_counter() - start)
        return status

    # --- the operators --------------------------------------------------------------------
    async def operators(self) -> None:
        """Every task of SCHEDULE on its period, until stopped."""
        tasks = {
            "batch": self.submit_job,
            "registry": self.registry_write,
            "gate": self.request_gate,
            "reads": self.reads,
            "feedback": self.send_feedback,
            "follow": self.follow,
        }
        await asyncio.gather(*(self._every(*SCHEDULE[k], fn) for k, fn in tasks.items()))

    async def _every(self, period: float, first: float, fn) -> None:
        began = time.monotonic()
        due = first
        while not self.stop.is_set():
            wait = began + due - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(self.stop.wait(), wait)
                    return
                except TimeoutError:
                    pass
            await fn()
            due += period

    async def submit_job(self) -> None:
        """A batch evaluation of v1 on DATASET."""
        body = {"model_name": self.model, "model_version": "v1", "dataset_id": DATASET}
        r = await self.call("batch", "POST", "/batch/submit", json=body)
        if r is not None and r.status_code == 202:
            self.jobs[r.json()["job_id"]] = None

    async def registry_write(self) -> None:
        """In turn: register a new version, promote v2, roll back to v1.

        New versions are registered (copied, hashed, recorded) but never promoted: the served
        set stays {v1, v2}, so after warm-up the API's model cache holds the same models and
        any growth is a leak, not the cache filling towards its MODEL_CACHE_SIZE bound.
        """
        step, self.registry_step = self.registry_step % 3, self.registry_step + 1
        base = f"/models/{self.model}"
        if step == 0:
            self.registered += 1
            source = self.artifacts["v1" if self.registered % 2 else "v2"]
            version = _version(f"v{self.registered + 2}", source)
            await self.call("registry", "POST", f"{base}/versions", json=version)
        elif step == 1:
            await self.call("registry", "POST", f"{base}/versions/v2/promote")
        else:
            await self.call("registry", "POST", f"{base}/rollback", json={"reason": "soak"})

    async def request_gate(self) -> None:
        """A gate of v2 against v1 on DATASET."""
        body = {"model_name": self.model, "candidate_version": "v2", "baseline_version": "v1"}
        r = await self.call("gate", "POST", "/gates", json={**body, "dataset_id": DATASET})
        if r is not None and r.status_code == 202:
            self.gates[r.json()["gate_id"]] = None

    async def reads(self) -> None:
        """The model's history, its audit trail, its versions, and the model as of now."""
        m = self.model
        await self.call("read", "GET", f"/models/{m}/history", params={"limit": 50})
        await self.call("read", "GET", "/events", params={"model": m, "limit": 100})
        await self.call("read", "GET", f"/models/{m}/versions", params={"limit": 50})
        await self.call("read", "GET", f"/models/{m}")

    async def send_feedback(self) -> None:
        """True labels for up to 20 answered /predict requests older than 3 s, one at a time."""
        now = time.monotonic()
        for _ in range(20):
            if not self.answered or now - self.answered[0][2] < 3:
                return
            rid, label, _ = self.answered.popleft()
            r = await self.call("feedback", "POST", "/feedback", json=_label(rid, label))
            if r is not None and r.status_code in (200, 404):
                self.feedback["labelled" if r.status_code == 200 else "not captured"] += 1

    async def follow(self) -> None:
        """Each unfinished job's and gate's status; how it ended once it did."""
        await self._follow(self.jobs, "/batch/status/{}", JOB_DONE)
        await self._follow(self.gates, "/gates/{}", GATE_DONE)

    async def _follow(self, ends: dict, path: str, done) -> None:
        """Ask for each unfinished id at ``path``: its status once in ``done``, "lost" on 404."""
        for run_id in [i for i, v in ends.items() if v is None]:
            r = await self.call("status", "GET", path.format(run_id))
            if r is not None and r.status_code == 200 and r.json()["status"] in done:
                ends[run_id] = r.json()["status"]
            elif r is not None and r.status_code == 404:
                ends[run_id] = "lost"

    async def drain(self, timeout_s: float) -> float:
        """After the load: follow jobs and gates until all ended or ``timeout_s``; seconds."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            await self.follow()
            jobs, gates = self.counts()
            if not (jobs.pending or gates.pending):
                break
            await asyncio.sleep(2)
        return time.monotonic() - start

    def ended(self) -> dict:
        """Lost, stuck and failed jobs and gates (a gate's 'failed' verdict is an answer)."""
        done = [*self.jobs.values(), *self.gates.values()]
        failed = sum(v in ("failed", "cancelled") for v in self.jobs.values())
        failed += sum(v == "errored" for v in self.gates.values())
        return {
            "jobs": len(self.jobs),
            "gates": len(self.gates),
            "lost": sum(v == "lost" for v in done),
            "stuck": sum(v is None for v in done),
            "failed": failed,
            "job_outcomes": dict(collections.Counter(map(str, self.jobs.values()))),
            "gate_outcomes": dict(collections.Counter(map(str, self.gates.values()))),
            "feedback": dict(self.feedback),
            "registry_writes": self.registry_step,
        }

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()


def _version(version: str, path: Path) -> dict:
    return {"model_version": version, "artifact_path": str(path)}


def _label(rid: str, label: int) -> dict:
    return {"request_id": rid, "label": int(label)}
