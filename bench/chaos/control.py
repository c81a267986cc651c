"""The control-plane faults: the api host cut off from Redis during a promotion (3), and the
relay leader's host partitioned (5)."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.chaos.cluster import FAST
from bench.chaos.driver import MODEL, png_b64
from bench.chaos.scenarios import Context, Outcome, start_lossy, stop_lossy, until

HOT_SWAP_POLL_S = 5.0  # api.hot_swap.ProdFollower's reconciliation period


class Predictions:
    """Four clients predicting on fresh connections; every answer kept as (time, status, pid,
    version)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.answers: list[tuple[float, int, str, str]] = []
        self.slowest: dict[int, float] = {}  # whole monotonic second → slowest answer begun then
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def _loop(self) -> None:
        body = {"model_name": MODEL, "image_b64": png_b64()}
        limits = httpx.Limits(max_keepalive_connections=0)
        headers = {"X-API-Key": self.key}
        async with httpx.AsyncClient(base_url=self.url, limits=limits, headers=headers) as c:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    r = await c.post("/predict", json=body, timeout=10)
                    ok = r.status_code == 200
                    version = r.json().get("model_version") if ok else r.text[:80]
                    answer = (r.status_code, r.headers.get("x-server-pid", "?"), version)
                except httpx.TransportError as exc:
                    answer = (0, "?", type(exc).__name__)
                self.answers.append((time.monotonic(), *answer))
                self.slowest[int(began)] = max(
                    self.slowest.get(int(began), 0.0), time.monotonic() - began
                )

    def start(self) -> None:
        """Start the clients."""
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(4)]

    async def stop(self) -> None:
        """Stop the clients."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def served(self, version: str, since: float = 0.0) -> set[str]:
        """The API pids that answered with ``version`` after ``since``."""
        return {p for t, code, p, v in self.answers if code == 200 and v == version and t >= since}

    def failed(self, start: float, end: float) -> int:
        """Answers between ``start`` and ``end`` that were not 200."""
        return sum(1 for t, code, _, _ in self.answers if start <= t <= end and code != 200)


async def promotion_cut_from_redis(ctx: Context) -> Outcome:
    """(3) The api host loses Redis; v2 is promoted during the cut; the cut heals."""
    d = ctx.driver
    pids = await d.wait_api()
    await d.call("POST", f"/models/{MODEL}/versions/v1/promote")
    load = Predictions(d.cluster.api_url, d.cluster.key)
    load.start()
    notes: list[str] = []
    try:
        await until(_served(load, "v1", pids), "both API processes served v1", 60)
        # Every packet between the api host and Redis dropped, both ways, PostgreSQL untouched.
        args = ("--loss", "1", "--delay-ms", "0", "--both-ways", "--only-redis", "api")
        cutter = await start_lossy(*args)
        cut = time.monotonic()
        try:
            await asyncio.sleep(2)
            await d.call("POST", f"/models/{MODEL}/versions/v2/promote")
            await asyncio.sleep(3)
            during = sum(1 for t, code, *_ in load.answers if t >= cut and code == 200)
            slowest = max(v for k, v in load.slowest.items() if k >= int(cut))
            notes.append(
                f"{during} predictions answered during the cut, the slowest in {slowest:.2f}s"
            )
        finally:
            stop_lossy(cutter)
        healed = time.monotonic()
        await until(_served(load, "v2", pids, healed), "both API processes served v2", 60)
        converge = time.monotonic() - healed
        await asyncio.sleep(1)
    finally:
        await load.stop()
    if converge > HOT_SWAP_POLL_S:
        notes.append(f"FAIL: v2 everywhere {converge:.1f}s after healing (> {HOT_SWAP_POLL_S}s)")
    if not during:
        notes.append("FAIL: no prediction was answered during the cut")
    return Outcome(
        scenario="api host cut from Redis during a promotion",
        requests=f"{len(load.answers)} predictions",
        lost=load.failed(0, time.monotonic()),
        duplicated=0,
        converge_s=round(converge, 1),
        audit_clean=d.audit(),
        identical=load.served("v2", healed + converge) == pids,
        notes=notes,
    )


def _served(load: Predictions, version: str, pids: set[str], since: float = 0.0):
    async def check() -> bool:
        return load.served(version, since) >= pids

    return check


async def relay_leader_partitioned(ctx: Context) -> Outcome:
    """(5) The host of the relay's leader is cut off while a job runs; another process leads."""
    d, net = ctx.driver, ctx.net
    address, _ = await d.relay_leader()
    host = next(h.name for h in net.hosts.values() if h.address == address)
    job = await d.submit()
    net.partition(host)
    try:

        async def moved() -> bool:
            now, _ = await d.relay_leader()
            return now not in (None, address)

        took = await until(moved, "another process leads the relay", 120)
        await d.wait_job(job)
    finally:
        net.heal(host)
    healed = await d.server_now()
    await until(lambda: d.spoke_since(address, healed), f"{host} reaches PostgreSQL again", 120)
    await asyncio.sleep(2 * float(FAST["RELAY_INTERVAL_S"]) + 1)  # the old leader's next pass
    facts = await d.facts(job)
    # The server drops the cut-off session after DB_KEEPALIVE_S and one probe (tcp_user_timeout
    # ends it then); the others try to lead once a second (storage.streams.relay).
    keepalive = int(FAST["DB_KEEPALIVE_S"])
    bound = keepalive + max(1, keepalive // 3) + 1.0
    notes = [f"leader on {host}; new leader after {took:.1f}s (bound {bound:.1f}s)"]
    if took > bound:
        notes.append(f"FAIL: the lead moved after {took:.1f}s")
    return Outcome(
        scenario=f"relay leader's host ({host}) partitioned",
        requests=f"{facts['images']} images, {facts['shards']} shards",
        lost=facts["lost"],
        duplicated=facts["duplicated"],
        converge_s=round(took, 1),
        audit_clean=d.audit(),
        identical=facts["metrics"] == ctx.clean["metrics"],
        notes=notes,
    )
