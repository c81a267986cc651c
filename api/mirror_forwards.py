"""The mirror's work in the inference thread: both versions' forwards of queued requests.

Each version's forward of the lot is timed alone, in a random order chosen by the caller, so
the paired latencies compare the versions and not their batchers' queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import structlog

from api.online_hooks import Served
from events.online import PairedOutcome
from ml.loaded_model import FORWARD_EXCLUSION
from ml.threads import SINGLE_THREAD

log = structlog.get_logger("online")


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


def held(work: Callable, *args) -> tuple:
    """In the inference thread: (work's result, the seconds it held the thread).

    What the budget is charged: timed from the caller, a lot also paid for the prod batches it
    waited behind in the executor's queue, so a loaded process mirrored far less than its share.
    """
    started = time.perf_counter()
    result = work(*args)
    return result, time.perf_counter() - started


def forwards(name: str, models: list, images: np.ndarray, order: tuple[int, int]) -> list:
    """In the inference thread: each model's forward of ``images`` in ``order``, timed alone;
    (predictions or None, ms per image) for each.

    Both first run once untimed: the live traffic keeps the version it mostly hits warm (its
    weights in cache, its shapes compiled), so a first forward of the other read 1.2x slower
    for an equal model in over half the pairs at a canary's 20% step (bench-shadow aborted an
    equally fast candidate on latency). Timed after a warm run each, they compare the versions.
    """
    out: list = [None, None]
    failed = [model is None for model in models]
    clock = forward_clock(models)
    with FORWARD_EXCLUSION:  # no inline forward beside the comparison (ml/loaded_model.py)
        for i in order:
            if not failed[i]:
                failed[i] = not _run(name, models[i], images)[0]
        for i in order:
            start = clock()
            ok, predictions = (False, None) if failed[i] else _run(name, models[i], images)
            ms = (clock() - start) * 1000 / len(images)
            out[i] = (predictions if ok else None, round(ms, 3))
    return out


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
    and the candidate's to those prod served; (predictions by lot index or None on failure,
    None) for each version."""
    out: list = []
    for side, model in enumerate(models):  # 0: prod, 1: the candidate
        idx = [k for k, served_by_prod in enumerate(by_prod) if served_by_prod == (side == 1)]
        predictions: list | None = [None] * len(images)
        if idx:
            ok, got = (False, None) if model is None else _run(name, model, images[idx])
            if ok:
                for k, p in zip(idx, got, strict=True):
                    predictions[k] = p
            else:
                predictions = None
        out.append((predictions, None))
    return out


def outcomes(jobs: list[MirrorJob], by_prod: list[bool], answers: list, at) -> list:
    """The lot's paired outcomes: the client's answer for its side, the mirror's for the other.

    Only the first outcome carries the paired latencies (the lot's ms per image, where timed):
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
                prod_prediction=served.prediction if by_prod[i] else _at(prod, i),
                candidate_prediction=_at(cand, i) if by_prod[i] else served.prediction,
                prod_latency_ms=prod_ms if i == 0 else None,
                candidate_latency_ms=cand_ms if i == 0 else None,
                at=at,
                served_by="prod" if by_prod[i] else "candidate",
            )
        )
    return out


def _at(predictions: list[int] | None, i: int) -> int | None:
    """The i-th prediction, or None when that side failed."""
    return None if predictions is None else predictions[i]


def same_run(jobs: list[MirrorJob]) -> list[list[MirrorJob]]:
    """Jobs grouped by run, step and input dtype (one forward per version for each group)."""
    groups: dict[tuple, list[MirrorJob]] = {}
    for j in jobs:
        groups.setdefault((j.run_id, j.step, j.served.input.dtype.str), []).append(j)
    return list(groups.values())
