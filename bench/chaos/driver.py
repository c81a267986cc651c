"""What the scenarios do to the cluster from the root namespace: models, jobs, predictions, and
the facts they check (rows and events in PostgreSQL, the audit)."""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import numpy as np

from bench.chaos.cluster import ROOT, Cluster

MODEL = "chaos"
DATASET = "fashion_mnist_1000"
# batch_size 1 makes a shard take a while, so faults land mid-job.
JOB = {"batch_size": 1, "shard_size": 200}
COMPARED = ("accuracy", "confusion_matrix", "per_class", "macro_f1")
# storage.streams.relay.LEADER_LOCK, a session-level advisory lock (classid 0, objid the key).
LEADER_SQL = (
    "SELECT a.client_addr::text, a.pid FROM pg_locks l JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = 7313002 AND l.granted"
)
# What a PostgreSQL that is restarting or cut off raises.
UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


class Driver:
    """An HTTP client for the API and a PostgreSQL connection, both from the root namespace."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = httpx.AsyncClient(
            base_url=cluster.api_url, headers={"X-API-Key": cluster.key}, timeout=30
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def call(self, method: str, path: str, **kw) -> dict:
        """One API call that must succeed; its JSON."""
        r = await self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def wait_api(self, processes: int = 2, timeout_s: float = 180) -> set[str]:
        """Until ``processes`` API pids answered /health on fresh connections."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout_s
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.cluster.api_url, limits=limits) as c:
            while len(seen) < processes:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API's processes did not all answer: {seen}")
                try:
                    r = await c.get("/health", timeout=2)
                    if r.status_code == 200:
                        seen.add(r.headers.get("x-server-pid", "?"))
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        return seen

    async def register(self, artifacts: dict[str, Path]) -> None:
        """Register v1 and v2 and promote v1."""
        for version, path in artifacts.items():
            body = {"model_version": version, "artifact_path": str(path)}
            await self.call("POST", f"/models/{MODEL}/versions", json=body)
        await self.call("POST", f"/models/{MODEL}/versions/v1/promote")

    async def submit(self) -> str:
        """Submit the scenarios' batch job; its id."""
        body = {"model_name": MODEL, "model_version": "v1", "dataset_id": DATASET, "config": JOB}
        return (await self.call("POST", "/batch/submit", json=body))["job_id"]

    async def db(self) -> asyncpg.Connection:
        """A fresh connection to PostgreSQL on the data host."""
        return await asyncpg.connect(self.cluster.database_url, timeout=10)

    async def job(self, job_id: str) -> dict:
        """The job's row, read straight from PostgreSQL (no API in the way)."""
        conn = await self.db()
        try:
            row = await conn.fetchrow(
                "SELECT status, shards, done_shards AS shards_done FROM batch_jobs WHERE job_id = $1",
                job_id,
            )
        finally:
            await conn.close()
        return dict(row) if row else {"status": "unknown", "shards": 0, "shards_done": 0}

    async def wait_job(self, job_id: str, timeout_s: float = 180, done: int | None = None) -> dict:
        """Until the job ends (or has ``done`` shards); fails on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                job = await self.job(job_id)
            except UNREACHABLE:
                job = {"status": "unreachable", "shards_done": 0}
            if done is not None and job["shards_done"] >= done:
                return job
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} stuck: {job}")
            await asyncio.sleep(0.2)

    async def facts(self, job_id: str) -> dict:
        """Shards planned, stored and completed (events) and the metrics of a job."""
        status = await self.call("GET", f"/batch/status/{job_id}")
        conn = await self.db()
        try:
            stored = await conn.fetchval(
                "SELECT count(*) FROM batch_shard_results WHERE job_id = $1", job_id
            )
            events = dict(
                await conn.fetch(
                    "SELECT event_type, count(*) FROM event_log WHERE stream_id = $1 "
                    "GROUP BY event_type",
                    f"job-{job_id}",
                )
            )
        finally:
            await conn.close()
        shards = status["shards"]
        completed = events.get("BatchShardCompleted", 0)
        return {
            "status": status["status"],
            "shards": shards,
            "images": status["progress"]["total"],
            "lost": shards - stored,
            "duplicated": max(0, completed - shards)
            + max(0, events.get("BatchJobCompleted", 0) - 1),
            "metrics": {k: (status.get("result_metrics") or {}).get(k) for k in COMPARED},
        }

    async def writers(self, job_id: str) -> dict[int, str]:
        """Which worker stored each shard of a job."""
        conn = await self.db()
        try:
            rows = await conn.fetch(
                "SELECT shard, worker FROM batch_shard_results WHERE job_id = $1", job_id
            )
        finally:
            await conn.close()
        return {r["shard"]: r["worker"] for r in rows}

    async def relay_leader(self) -> tuple[str | None, int | None]:
        """The address and backend pid of the session holding the relay's leader lock."""
        conn = await self.db()
        try:
            row = await conn.fetchrow(LEADER_SQL)
        finally:
            await conn.close()
        return (row[0].split("/")[0], row[1]) if row and row[0] else (None, None)

    async def server_now(self) -> float:
        """PostgreSQL's clock (epoch seconds), to compare with its activity times."""
        conn = await self.db()
        try:
            return float(await conn.fetchval("SELECT extract(epoch FROM now())"))
        finally:
            await conn.close()

    async def spoke_since(self, address: str, since: float) -> bool:
        """A session from ``address`` ran a statement after ``since`` (PostgreSQL's clock)."""
        conn = await self.db()
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE client_addr = $1::inet "
                    "AND extract(epoch FROM state_change) > $2",
                    address,
                    since,
                )
            )
        finally:
            await conn.close()

    def audit(self) -> bool:
        """``python -m cli audit`` on the cluster: chain, projections and streams against the log."""
        env = self.cluster.env()
        r = subprocess.run(
            [sys.executable, "-m", "cli", "audit"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if r.returncode != 0:
            print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        return r.returncode == 0


def png_b64(seed: int = 0) -> str:
    """A 28×28 grey image as base64 PNG."""
    from PIL import Image

    image = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def diagnose(driver: Driver) -> str:
    """Where a stuck cluster stands: the relay's leader and checkpoint, the groups' backlogs."""
    import redis.asyncio as aioredis

    lines = []
    conn = await driver.db()
    try:
        leader = await conn.fetch(LEADER_SQL)
        lines.append(f"relay leader: {[tuple(r) for r in leader]}")
        checkpoints = await conn.fetch("SELECT name, position FROM checkpoints")
        lines.append(f"checkpoints: {[tuple(r) for r in checkpoints]}")
        head = await conn.fetchval("SELECT max(position) FROM event_log")
        lines.append(f"log head: {head}")
    finally:
        await conn.close()
    r = aioredis.Redis.from_url(driver.cluster.redis_url, socket_timeout=5)
    try:
        for stream in ("jobs.events", "jobs.shards"):
            info = await r.xinfo_stream(stream)
            lines.append(f"{stream}: last {info['last-generated-id']} length {info['length']}")
            for g in await r.xinfo_groups(stream):
                lines.append(
                    f"  group {g['name']}: pending {g['pending']} last {g['last-delivered-id']}"
                )
                for c in await r.xinfo_consumers(stream, g["name"]):
                    lines.append(f"    {c['name']}: pending {c['pending']} idle {c['idle']}")
    finally:
        await r.aclose()
    return "\n".join(lines)
