"""The mirror's work in the inference thread: both versions' forwards of queued requests.

Each version's probe is timed alone, in a random order, so the paired latencies compare the
versions and not their batchers' queues.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import structlog

from api.online_hooks import Served
from events.online import PairedOutcome
from ml.loaded_model import FORWARD_EXCLUSION
from ml.threads import SINGLE_THREAD

log = structlog.get_logger("online")
MIRROR_CHUNK = 8  # images per hand-off: what a prod batch may wait behind (answer_lot)
BUSY_QUEUED = 32  # the other version's batcher holds this many images: too busy to mirror
STALE_S = 1.0  # a request queued longer than this is dropped (the process is busy)
DEFER_S = 0.01  # a lot that may not run yet looks again this much later (until stale)


@dataclass(slots=True)
class MirrorJob:
    """A request queued to be answered by both versions of a run."""

    served: Served
    run_id: str
    step: int
    prod_version: str
    candidate_version: str
    queued_at: float


class MirrorBudget:
    """How much of the inference thread the mirror may take while requests wait for a model.

    When prod's batcher has requests waiting, every millisecond a lot holds the thread delays
    them, so lots then run only within ``share`` of the thread's time (a token bucket, ``burst``
    seconds deep, charged what each lot held) and the rest is dropped as busy. With nothing
    waiting, a lot always runs (and still spends the bucket, so a burst of load finds it empty
    rather than owed).
    """

    def __init__(
        self, share: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.share, self.burst, self.clock = share, burst, clock
        self.tokens, self._at = burst, clock()

    def allows(self, waiting: bool) -> bool:
        """Whether a lot may run now (``waiting``: requests are queued for a model)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.share)
        self._at = now
        return not waiting or self.tokens > 0

    def spend(self, seconds: float) -> None:
        """Charge a lot's forwards (never more than one bucket in debt)."""
        self.tokens = max(-self.burst, self.tokens - seconds)


async def until_free(
    budget: MirrorBudget,
    models: list,
    queued_at: float,
    defer: Callable[[], Awaitable[None]] | None,
) -> bool:
    """Whether a lot may run: no batcher too busy and the budget allows it. With ``defer`` (a
    canary's lot) it waits, ``defer`` between looks, and is refused once its first request is
    stale; without (a shadow's), the first look decides.

    Refused at the first look, a canary's lot was lost whenever a live request was waiting for a
    model, which at its 4 clients is most of the time, though the gaps between live batches come
    within milliseconds (bench-shadow: 25% of labelled requests paired, 32-46% waiting). A
    shadow's lots do not wait: at c=32 the gaps are right where prod's next batch starts, and
    fraction 0.1 read 0.78-1.04x throughput in five runs with the wait, 0.92-1.06x in three without.
    """
    while True:
        light = all(m is None or m.batcher.queued < BUSY_QUEUED for m in models)
        if light and budget.allows(any(m is not None and m.batcher.queued for m in models)):
            return True
        if defer is None or time.monotonic() - queued_at > STALE_S:
            return False
        await defer()


def held(work: Callable, *args) -> tuple:
    """In the inference thread: (work's result, the seconds it held the thread).

    What the budget is charged: timed from the caller, a lot also paid for the prod batches it
    waited behind in the executor's queue, so a loaded process mirrored far less than its share.
    """
    started = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - started


async def answer_lot(
    hand_off: Callable, name: str, models: list, images: np.ndarray, by_prod: list, timed: bool
):
    """Each version's (predictions by lot index, None where it failed; ms per image or None)
    and the seconds the lot held the inference thread.

    ``hand_off(work, *args)`` runs ``work`` in the inference thread and returns (its result,
    the seconds it held the thread). The lot goes in short hand-offs, so a prod batch queued
    meanwhile waits behind one of them, not the whole lot: each version's probe (a timed lot
    only, in a random order) and the other sides in chunks of ``MIRROR_CHUNK`` images. As one
    hand-off, a lot held the thread 5-8 ms at a shadow's 0.1 (2.7 images, a timed lot four
    forwards of them) and up to 55 ms at 1.0, and the prod batches queued behind it waited that
    long: at 1.0, 22-33 stalls of prod's requests per 4 rounds, 6 in short hand-offs (bench-shadow).
    """
    held_s, ms = 0.0, [None, None]
    if timed:
        for i in (0, 1) if random.random() < 0.5 else (1, 0):
            if models[i] is not None:
                ms[i], s = await hand_off(probe, name, models, i, images[:1])
                held_s += s
    predictions: list[list] = [[], []]
    for start in range(0, len(images), MIRROR_CHUNK):
        end = start + MIRROR_CHUNK
        part, s = await hand_off(other_sides, name, models, images[start:end], by_prod[start:end])
        held_s += s
        predictions[0] += part[0]
        predictions[1] += part[1]
    return [(predictions[0], ms[0]), (predictions[1], ms[1])], held_s


def probe(name: str, models: list, i: int, image: np.ndarray) -> float | None:
    """In the inference thread: version ``i``'s ms for ``image`` (one), timed on a warm run; None
    where it failed.

    A warm run first: the live traffic keeps the version it mostly hits warm (its weights in
    cache, its shapes compiled), so a first forward of the other read 1.2x slower for an equal
    model in over half the pairs at a canary's 20% step (bench-shadow aborted an equally fast
    candidate on latency). One image, so the probe holds the thread ~1.5 ms on the 2-core VM.
    """
    clock = forward_clock(models)
    with FORWARD_EXCLUSION:  # no inline forward beside the probe (ml/loaded_model.py)
        if not _run(name, models[i], image)[0]:
            return None
        start = clock()
        ok = _run(name, models[i], image)[0]
        ms = (clock() - start) * 1000 / len(image)
    return round(ms, 3) if ok else None


def forward_clock(models: list) -> Callable[[], float]:
    """The clock that times the mirror's forwards: this thread's CPU time where a forward runs
    wholly on it (the CPU, one torch thread), else the wall clock.

    On a busy machine the wall clock counts whatever preempted the forward (the other API
    process, the event loop's inline forwards, the load itself), noise of several times a
    ~0.3 ms forward: an equally fast candidate read more than 1.2x slower in 44-64% of pairs,
    and bench-shadow's equal canary was aborted on latency in some runs. The thread's CPU time
    is the forward's own work, which is what differs between two versions.
    """
    cpu_only = all(
        m is None or (m.device.type == "cpu" and m.threads.large == SINGLE_THREAD) for m in models
    )
    return time.thread_time if cpu_only else time.perf_counter


def _run(name: str, model, images: np.ndarray) -> tuple[bool, list[int] | None]:
    try:
        return True, model.forward(images).argmax(axis=1).tolist()
    except Exception as exc:  # a failing version is an outcome (its error), not a crash
        log.info("online_answer_failed", model=name, error=str(exc)[:200])
        return False, None


def other_sides(name: str, models: list, images: np.ndarray, by_prod: list[bool]) -> list:
    """In the inference thread, untimed: prod's answers to the requests the candidate served
    and the candidate's to those prod served; for each version, its predictions by index (None
    where it did not run or failed)."""
    out: list = []
    for side, model in enumerate(models):  # 0: prod, 1: the candidate
        idx = [k for k, served_by_prod in enumerate(by_prod) if served_by_prod == (side == 1)]
        predictions: list = [None] * len(images)
        if idx and model is not None:
            ok, got = _run(name, model, images[idx])
            for k, p in zip(idx, got if ok else [None] * len(idx), strict=True):
                predictions[k] = p
        out.append(predictions)
    return out


def outcomes(jobs: list[MirrorJob], by_prod: list[bool], answers: list, at) -> list:
    """The lot's paired outcomes: the client's answer for its side, the mirror's for the other.

    Only the first outcome carries the paired latencies (the probes' ms per image, where timed):
    the others share that one measurement, and counting it again would overstate the evidence.
    """
    (prod, prod_ms), (cand, cand_ms) = answers
    out = []
    for i, job in enumerate(jobs):
        served = job.served
        out.append(
            PairedOutcome(
                run_id=job.run_id,
                request_id=served.request_id,
                model_name=served.model_name,
                step=job.step,
                prod_version=job.prod_version,
                candidate_version=job.candidate_version,
                prod_prediction=served.prediction if by_prod[i] else prod[i],
                candidate_prediction=cand[i] if by_prod[i] else served.prediction,
                prod_latency_ms=prod_ms if i == 0 else None,
                candidate_latency_ms=cand_ms if i == 0 else None,
                at=at,
                served_by="prod" if by_prod[i] else "candidate",
            )
        )
    return out


def same_run(jobs: list[MirrorJob]) -> list[list[MirrorJob]]:
    """Jobs grouped by run, step and input dtype (each group is one lot, answer_lot)."""
    groups: dict[tuple, list[MirrorJob]] = {}
    for j in jobs:
        groups.setdefault((j.run_id, j.step, j.served.input.dtype.str), []).append(j)
    return list(groups.values())
