"""Shadow mirror and canary router of an API process (plugged into api/online_hooks.py).

``route`` sends a canary's share of the requests that name no version to the candidate, by a
stable hash of the client's X-Routing-Key (else the request id): the same key always lands on
the same side, and a key on the candidate stays there as the share grows. ``after`` takes the
canary's answers, as many of prod's (sampled), and a shadow's sampled prod answers, marks them
kept (so feedback can label them) and queues them without waiting; a bounded queue, dropped
and counted when full or when the other version's batcher is busy, so the mirror never slows
or fails a prod request.
Mirror tasks answer each queued request with the other version off the response path, a lot in
a few short hand-offs to the inference thread; a lot every TIMED_EVERY requests also times each
version alone on one image (in a random order), so the paired latencies compare the versions and
not their batchers' queues. Outcomes go to ``shadow.outcomes``; runs are re-read every 0.5 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from datetime import UTC, datetime

import numpy as np
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from api.mirror_forwards import DEFER_S, STALE_S, MirrorBudget
from api.mirror_forwards import MirrorJob as _Job
from api.mirror_forwards import answer_lot as _answer_lot
from api.mirror_forwards import held as _held
from api.mirror_forwards import outcomes as _outcomes
from api.mirror_forwards import same_run as _same_run
from api.mirror_forwards import until_free as _until_free
from api.online_hooks import Served
from api.queue_drain import drain, take_batch
from domain.errors import DomainError, ServiceUnavailable
from domain.online.commands import encode_outcomes
from domain.online.ports import OnlineLog
from domain.online.state import CanaryRun, ShadowRun
from events.online import OUTCOMES_STREAM, PairedOutcome
from ml.inference import InferenceService
from observability.meter import API
from observability.metrics import CANARY_SHARE, instruments
from observability.supervisor import sleep_until_stopped

log = structlog.get_logger("online")
QUEUE_SIZE = 256  # requests waiting to be mirrored in this process
WORKERS = 2  # mirror tasks at once
MIRROR_BATCH = 16  # queued requests of a run taken as one lot (forwards of up to MIRROR_CHUNK)
# Every lot runs, for each request, only the version its client did not get; a lot is also timed
# (a warm and a timed forward of each version on one image) once this many requests were
# mirrored untimed since the last timed one: the latency check gets a pair per ~12 requests,
# whatever the lots' size.
TIMED_EVERY = 12
# A lot waits this long after its first request to fill (up to MIRROR_BATCH): a forward of 16
# images costs the 2-core VM's inference thread 0.40 ms an image, of 1-3 images 0.75 ms, and lots
# at a 50 ms linger held 2-4 requests (bench-shadow: at 0.25 s, twice the pairs at fraction 0.1).
MIRROR_LINGER_S = 0.25
# While requests wait for a model, the mirror may take this share of the inference thread
# (api/mirror_forwards.MirrorBudget), so a busy process keeps its throughput.
MIRROR_SHARE = 0.01
MIRROR_BURST_S = 0.05
BATCH = 64
STREAM_MAXLEN = 20_000
REFRESH_S = 0.5
LINGER_S = 0.2  # a batch of outcomes waits this long to fill (api/queue_drain.py)
BUCKETS = 10_000


def bucket(run_id: str, key: str) -> int:
    """A stable bucket in [0, 10000) of a routing key within one canary."""
    digest = hashlib.blake2b(f"{run_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class OnlineFollower:
    """The shadow mirror (a subscriber of the hooks) and the canary router of one API process."""

    def __init__(
        self,
        inference: InferenceService,
        redis: aioredis.Redis,
        runs: OnlineLog,
        *,
        queue_size: int = QUEUE_SIZE,
        workers: int = WORKERS,
    ) -> None:
        self.inference, self.redis, self.runs = inference, redis, runs
        self.shadows: dict[str, ShadowRun] = {}
        self.canaries: dict[str, CanaryRun] = {}
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        self.outcomes: asyncio.Queue[PairedOutcome] = asyncio.Queue(queue_size * 4)
        self.workers = workers
        self.dropped = 0
        self.mirrored = 0
        self.untimed = TIMED_EVERY  # requests mirrored since the last timed lot (first: timed)
        self.prefetched: set[tuple[str, str]] = set()  # (model, candidate) loaded or loading
        self._tasks: set[asyncio.Task] = set()
        self.routed_models: set[str] = set()  # models that had a canary in this process
        self.budget = MirrorBudget(MIRROR_SHARE, MIRROR_BURST_S)
        self._inst = instruments()
        self._inst.gauge("canary_share", CANARY_SHARE, self.share_samples, roles=API)

    def share_samples(self) -> list[tuple[float, dict[str, str]]]:
        """canary_share: the candidate's share (0 to 1) of each model this process serves."""
        canaries = self.canaries
        prod = dict(self.inference.prod)  # a copy: scrapes run on another thread
        known = self.routed_models | set(canaries) | {n for n, v in prod.items() if v}
        return [
            (canaries[n].share / 100 if n in canaries else 0.0, {"model_name": n})
            for n in sorted(known)
        ]

    # --- the response path: dict lookups, a hash, a put_nowait ---------------------------
    def wants(self, model_name: str) -> bool:
        """Whether the model has a shadow or a canary running."""
        return model_name in self.shadows or model_name in self.canaries

    def route(self, model_name: str, request_id: str, routing_key: str | None) -> str | None:
        """The candidate for the canary's share of the keys, else None (prod)."""
        c = self.canaries.get(model_name)
        if c is None:
            return None
        if bucket(c.canary_id, routing_key or request_id) < c.share * (BUCKETS // 100):
            return c.candidate_version
        return None

    def after(self, served: Served) -> None:
        """Queue a canary's answer or a sampled prod answer to be paired; never waits."""
        name = served.model_name
        c = self.canaries.get(name)
        if c is not None and served.routed and served.model_version == c.candidate_version:
            served.keep = True
            self._put(served, c.canary_id, c.step, c.prod_version, c.candidate_version)
            return
        if served.routed:
            return
        # Prod's answers are paired too, as many as the candidate's (1 in 4 at a 20% step, all
        # at 50%): each labelled pair is evidence whichever side served it.
        by_prod = c is not None and served.model_version == c.prod_version and c.share < 100
        if by_prod and random.random() < c.share / (100 - c.share):  # random() < 1: always
            self._put_sampled(served, c.canary_id, c.step, c.prod_version, c.candidate_version)
            return
        s = self.shadows.get(name)
        if s is None or served.model_version != s.prod_version:
            return
        if random.random() < s.fraction:
            self._put_sampled(served, s.shadow_id, 0, s.prod_version, s.candidate_version)

    def _put_sampled(self, served: Served, run: str, step: int, prod: str, cand: str) -> None:
        """Queue a sampled prod answer unless the mirror's budget is spent (then not kept)."""
        if not self.budget.allows(True):  # spent while requests wait: not even captured
            self._drop(served.model_name, "busy")
            return
        served.keep = True
        self._put(served, run, step, prod, cand)

    def _put(self, served: Served, run: str, step: int, prod: str, candidate: str) -> None:
        job = _Job(served, run, step, prod, candidate, time.monotonic())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self._drop(served.model_name, "queue_full")

    def _drop(self, model_name: str, reason: str, n: int = 1) -> None:
        self.dropped += n
        self._inst.online_dropped.add(n, {"model_name": model_name, "reason": reason})

    # --- background ----------------------------------------------------------------------
    async def mirror(self, stop: asyncio.Event) -> None:
        """Answer queued requests with both versions until ``stop`` (``workers`` at once)."""
        async with asyncio.TaskGroup() as tg:
            for _ in range(self.workers):
                tg.create_task(self._mirror_loop(stop))

    async def _mirror_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            jobs = await take_batch(self.queue, MIRROR_BATCH, MIRROR_LINGER_S)
            for group in _same_run(jobs):
                for outcome in await self.pair_many(group):
                    try:
                        self.outcomes.put_nowait(outcome)
                    except asyncio.QueueFull:
                        self._drop(outcome.model_name, "outcomes_full")

    async def pair_many(self, jobs: list[_Job]) -> list[PairedOutcome]:
        """Both versions' answers to queued requests of one run, batched across the lot (a batch
        costs far less per image than single forwards); a lot every TIMED_EVERY requests timed.
        """
        name = jobs[0].served.model_name
        now = time.monotonic()
        fresh = [j for j in jobs if now - j.queued_at <= STALE_S]
        if len(fresh) < len(jobs):
            self._drop(name, "busy", len(jobs) - len(fresh))
        if not fresh:
            return []
        first = fresh[0]
        images = np.stack([j.served.input for j in fresh])
        by_prod = [j.served.model_version == j.prod_version for j in fresh]
        timed = self.untimed >= TIMED_EVERY
        self.untimed = 0 if timed else self.untimed + len(fresh)
        answers = await self._answer_both(name, images, by_prod, timed, first)
        if answers is None:
            self._drop(name, "busy", len(fresh))
            return []
        self.mirrored += len(fresh)
        self._inst.online_mirrored.add(len(fresh), {"model_name": name})
        return _outcomes(fresh, by_prod, answers, datetime.now(UTC))

    async def _answer_both(self, name: str, images, by_prod, timed: bool, first: _Job):
        """Each version's (predictions by lot index, None where it failed; ms per image or
        None), or None when a batcher is busy or the budget is spent.

        Every request gets the version its client did not get; a timed lot also probes each
        version alone in the inference thread (api/mirror_forwards.answer_lot), so the paired
        latencies compare the versions. Timed through their batchers they measured the traffic
        split instead: at a canary's 100% step the candidate's batcher holds every live request
        and prod's is idle (an equal candidate read 1.2-1.3x slower); in a shadow the reverse.
        """
        models: list = []
        for version in (first.prod_version, first.candidate_version):
            try:
                model = await self.inference.resolve(name, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing version is an outcome (its error), not a crash
                log.info("online_answer_failed", model=name, version=version, error=str(exc)[:200])
                model = None
            models.append(model)
        canary = self.canaries.get(name)  # a canary's lot waits for a gap (mirror_forwards)
        defer = self._defer if canary is not None and canary.canary_id == first.run_id else None
        if not await _until_free(self.budget, models, first.queued_at, defer):
            return None
        answers, held_s = await _answer_lot(self._hand_off, name, models, images, by_prod, timed)
        self.budget.spend(held_s)
        return answers

    async def _defer(self) -> None:
        """A lot that may not run yet looks again DEFER_S later."""
        await asyncio.sleep(DEFER_S)

    async def _hand_off(self, work, *args) -> tuple:
        """``work(*args)`` in this process's one inference thread: (its result, seconds held)."""
        executor = self.inference.cache.executor
        return await asyncio.get_running_loop().run_in_executor(executor, _held, work, *args)

    async def write(self, stop: asyncio.Event) -> None:
        """Drain paired outcomes in batches, one XADD each, until ``stop``."""
        await drain(self.outcomes, stop, self.flush, size=BATCH, linger_s=LINGER_S)

    async def flush(self, batch: list[PairedOutcome]) -> None:
        """One XADD; a Redis failure drops the batch (counted), never blocks serving."""
        try:
            await self.redis.xadd(
                OUTCOMES_STREAM,
                {"rows": encode_outcomes(batch)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            log.warning("outcomes_write_failed", error=str(exc), dropped=len(batch))
            for o in batch:
                self._drop(o.model_name, "redis_error")

    async def refresh_once(self) -> None:
        """Re-read the running shadows and canaries."""
        states = await self.runs.running()
        self.shadows = {s.model_name: s.shadow for s in states if s.shadow is not None}
        self.canaries = {s.model_name: s.canary for s in states if s.canary is not None}
        self.routed_models |= set(self.canaries)  # an ended canary's share then reads 0
        for name, run in [*self.shadows.items(), *self.canaries.items()]:
            if (name, run.candidate_version) not in self.prefetched:
                self.prefetched.add((name, run.candidate_version))
                task = asyncio.create_task(self._prefetch(name, run.candidate_version))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _prefetch(self, name: str, version: str) -> None:
        """Load a run's candidate when the run is first seen, not on its first mirrored or routed
        request: that one waited for the load, and the CPU went to it mid-load (bench-shadow:
        the first round of a shadow read p99 1.66x, the second 1.03x)."""
        try:
            await self.inference.resolve(name, version)
        except Exception as exc:  # the first request that needs it tries again
            log.warning("online_prefetch_failed", model=name, version=version, error=str(exc))

    async def refresh(self, stop: asyncio.Event) -> None:
        """Follow starts, steps and aborts: re-read every REFRESH_S until ``stop``."""
        while True:
            try:
                await self.refresh_once()
            except (ServiceUnavailable, DomainError) as exc:  # keep the last runs meanwhile
                log.warning("online_runs_unavailable", error=str(exc))
            if await sleep_until_stopped(stop, REFRESH_S):
                return
