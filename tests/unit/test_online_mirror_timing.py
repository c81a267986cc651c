"""The mirror times each version's own forward, not its batcher's queue (api/online_mirror.py).

At a canary's 100% step the candidate's batcher holds every live request and prod's is idle;
timed through their batchers, an equal candidate read 1.2-1.3x slower and was aborted by the
latency check (in a shadow the reverse: 0.7x). A fake clock that only the forwards (and the
batchers' queues) advance makes the paired latencies exact, so no wall time is asserted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

import api.mirror_forwards as mirror_forwards
import api.online_mirror as mirror
from api.online_hooks import Served
from api.online_mirror import OnlineFollower, _Job
from domain.online.state import CanaryRun
from events.registry import ArtifactMetadata
from ml.loaded_model import FORWARD_EXCLUSION, LoadedModel, VersionRef
from ml.zoo import build_model

_REF = VersionRef("m", "v1", "0" * 64, "m/v1/model.pt", {"architecture": "mnist_cnn"})


class _Clock:
    """perf_counter and monotonic, in seconds, moved only by the fakes below."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def perf_counter(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def thread_time(self) -> float:  # what times a CPU forward on one thread
        return self.now

    def advance(self, ms: float) -> None:
        with self.lock:
            self.now += ms / 1000


class _Model:
    """A version whose forward costs ``cost_ms`` and whose batcher has a live backlog."""

    def __init__(self, clock: _Clock, cost_ms: float, backlog_ms: float, cls: int, fail=False):
        self.clock, self.cost_ms, self.cls, self.fail = clock, cost_ms, cls, fail
        self.device, self.threads = SimpleNamespace(type="cpu"), SimpleNamespace(large=1)
        self.batcher = SimpleNamespace(queued=0, submit=self._submit, backlog_ms=backlog_ms)

    async def _submit(self, image):  # the old path: the backlog, then the forward
        self.clock.advance(self.batcher.backlog_ms)
        return self.forward(image)

    def forward(self, image: np.ndarray) -> np.ndarray:
        self.clock.advance(self.cost_ms)
        if self.fail:
            raise RuntimeError("weights gone")
        logits = np.zeros((len(image), 10), dtype=np.float32)
        logits[:, self.cls] = 1.0
        return logits


class _Inference:
    def __init__(self, models: dict[str, _Model]) -> None:
        self.models = models
        self.cache = SimpleNamespace(executor=ThreadPoolExecutor(1))

    async def resolve(self, name: str, version: str) -> _Model:
        return self.models[version]


def _job(served_version: str = "v2") -> _Job:
    served = Served(
        request_id="r-1",
        model_name="m",
        model_version=served_version,
        prod_version="v1",
        input=np.zeros((28, 28), dtype=np.uint8),
        prediction=7,
        scores=[0.0] * 10,
        latency_ms=1.0,
        routed=served_version == "v2",
    )
    return _Job(served, "c-1", 3, "v1", "v2", 0.0)


_CANARY = CanaryRun(
    canary_id="c-1",
    candidate_version="v2",
    prod_version="v1",
    steps=[20, 100],
    min_requests=1,
    max_duration_s=60,
    started_at=datetime.now(UTC),
)


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(mirror, "time", c)
    monkeypatch.setattr(mirror_forwards, "time", c)
    return c


def _pair(models: dict[str, _Model], job: _Job | None = None, defer=None):
    follower = OnlineFollower(_Inference(models), None, None)  # type: ignore[arg-type]
    if defer is not None:  # the job's run is a canary (a shadow's lot does not wait)
        follower.canaries = {"m": _CANARY}
        follower._defer = defer
    outcomes = asyncio.run(follower.pair_many([job or _job()]))
    return follower, outcomes[0] if outcomes else None


def test_an_equal_candidate_under_all_the_live_traffic_times_equal(clock) -> None:
    # The candidate's batcher has 20 ms of live requests ahead (a canary at 100%), prod's none.
    models = {"v1": _Model(clock, 1.5, 0.0, 3), "v2": _Model(clock, 1.5, 20.0, 3)}
    for _ in range(20):  # both orders of the two forwards come up
        _, outcome = _pair(models)
        assert outcome.prod_latency_ms == outcome.candidate_latency_ms == 1.5
    assert outcome.candidate_prediction == 7  # the client's answer counts for its side
    assert outcome.prod_prediction == 3
    assert outcome.served_by == "candidate"


def test_a_slower_candidate_reads_slower_and_a_failing_one_is_an_error(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 20.0, 3), "v2": _Model(clock, 3.0, 0.0, 4)}
    _, outcome = _pair(models, _job("v1"))
    assert (outcome.prod_latency_ms, outcome.candidate_latency_ms) == (1.0, 3.0)
    assert (outcome.prod_prediction, outcome.candidate_prediction) == (7, 4)
    assert outcome.served_by == "prod"
    models["v2"].fail = True
    _, outcome = _pair(models, _job("v1"))
    assert outcome.candidate_prediction is None and outcome.prod_prediction == 7


def test_a_shadows_lot_is_dropped_at_once_when_a_batcher_is_busy(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 1.0, 0.0, 3)}
    models["v1"].batcher.queued = mirror_forwards.BUSY_QUEUED
    follower, outcome = _pair(models)  # no canary runs: the lot is a shadow's
    assert outcome is None and follower.dropped == 1 and follower.mirrored == 0


def test_a_canarys_lot_waits_for_a_busy_batcher_and_is_dropped_once_stale(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 1.0, 0.0, 3)}
    models["v1"].batcher.queued = mirror_forwards.BUSY_QUEUED
    looks = []

    async def defer() -> None:  # the wait moves the fake clock; the batcher stays busy
        looks.append(clock.now)
        clock.advance(mirror.DEFER_S * 1000)

    follower, outcome = _pair(models, defer=defer)
    assert outcome is None and follower.dropped == 1 and follower.mirrored == 0
    # It looked again until its request was STALE_S old, then gave up.
    assert len(looks) == pytest.approx(mirror.STALE_S / mirror.DEFER_S, abs=2)


def test_a_canarys_lot_runs_as_soon_as_the_busy_batcher_frees(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 1.0, 0.0, 3)}
    models["v1"].batcher.queued = mirror_forwards.BUSY_QUEUED
    looks = []

    async def defer() -> None:  # the live batch drains after three looks
        looks.append(clock.now)
        clock.advance(mirror.DEFER_S * 1000)
        if len(looks) == 3:
            models["v1"].batcher.queued = 0

    follower, outcome = _pair(models, defer=defer)
    assert len(looks) == 3 and follower.dropped == 0 and follower.mirrored == 1
    assert outcome is not None and outcome.prod_prediction == 3


def test_queued_requests_of_a_run_share_one_forward_and_one_timing(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 3.0, 0.0, 4)}
    calls = {"v1": 0, "v2": 0}
    for version, model in models.items():
        inner = model.forward

        def counted(images, version=version, inner=inner):
            calls[version] += 1
            return inner(images)

        model.forward = counted
    follower = OnlineFollower(_Inference(models), None, None)  # type: ignore[arg-type]
    jobs = [_job("v1") for _ in range(5)]
    stale = _job("v1")
    stale.queued_at = -(mirror.STALE_S + 1)  # queued too long ago: dropped as busy
    outcomes = asyncio.run(follower.pair_many([stale, *jobs]))
    # Each version's probe (a warm and a timed forward of one image), then one forward of the
    # five by the candidate, the side their clients did not get.
    assert calls == {"v1": 2, "v2": 3}
    assert len(outcomes) == 5 and follower.dropped == 1 and follower.mirrored == 5
    assert [o.candidate_prediction for o in outcomes] == [4] * 5
    # One measurement, per image of the probe: counted once.
    assert (outcomes[0].prod_latency_ms, outcomes[0].candidate_latency_ms) == (1.0, 3.0)
    assert all(o.prod_latency_ms is None and o.candidate_latency_ms is None for o in outcomes[1:])


def test_cpu_forwards_are_timed_by_the_threads_cpu_time_so_preemption_does_not_count() -> None:
    def model(device: str, threads: int) -> SimpleNamespace:
        return SimpleNamespace(
            device=SimpleNamespace(type=device), threads=SimpleNamespace(large=threads)
        )

    cpu = model("cpu", 1)
    assert mirror_forwards.forward_clock([cpu, None]) is time.thread_time
    # Wall time where the forward is not all on this thread: a GPU, or several torch threads.
    assert mirror_forwards.forward_clock([cpu, model("cuda", 1)]) is time.perf_counter
    assert mirror_forwards.forward_clock([cpu, model("cpu", 4)]) is time.perf_counter

    class _Stalled:  # a forward that is preempted for 50 ms (off the CPU), then answers
        device, threads = cpu.device, cpu.threads

        def forward(self, images: np.ndarray) -> np.ndarray:
            time.sleep(0.05)
            return np.zeros((len(images), 10), dtype=np.float32)

    images = np.zeros((1, 28, 28), dtype=np.uint8)
    out = [mirror_forwards.probe("m", [_Stalled(), _Stalled()], i, images) for i in (0, 1)]
    assert all(ms is not None and ms < 25 for ms in out), out  # 50 ms off the CPU: not counted


def test_no_inline_forward_runs_beside_the_mirrors_comparison() -> None:
    # A version run meanwhile on another thread kept its weights hot and read faster (42% of
    # pairs "slower" for an equal candidate, 5% with the exclusion): inline forwards wait.
    meta = ArtifactMetadata(architecture="mnist_cnn", num_classes=10)
    real = LoadedModel(_REF, build_model("mnist_cnn", 10).eval(), meta, lambda *_: None)
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    inline_done = threading.Event()
    seen: list[tuple[bool, bool]] = []  # (exclusion held, inline finished) in each forward

    def inline() -> None:
        real.forward_inline([image])
        inline_done.set()

    class _Compared:
        device, threads = SimpleNamespace(type="cpu"), SimpleNamespace(large=1)

        def forward(self, images: np.ndarray) -> np.ndarray:
            if not seen:  # a request answered inline arrives during the comparison
                threading.Thread(target=inline, daemon=True).start()
            inline_done.wait(0.2)  # long enough for a lone forward that does not wait
            seen.append((FORWARD_EXCLUSION.locked(), inline_done.is_set()))
            return np.zeros((len(images), 10), dtype=np.float32)

    mirror_forwards.probe("m", [_Compared(), _Compared()], 1, image)
    assert seen == [(True, False)] * 2  # the probe's warm and timed forward
    assert inline_done.wait(10)  # and it ran once the comparison ended


def test_between_timed_lots_each_request_gets_only_the_version_its_client_did_not(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 3.0, 0.0, 4)}
    seen: dict[str, list[int]] = {"v1": [], "v2": []}
    for version, model in models.items():
        inner = model.forward

        def counted(images, version=version, inner=inner):
            seen[version].append(len(images))
            return inner(images)

        model.forward = counted
    follower = OnlineFollower(_Inference(models), None, None)  # type: ignore[arg-type]
    asyncio.run(follower.pair_many([_job("v1")]))  # the first lot is timed: both probed
    assert seen == {"v1": [1, 1], "v2": [1, 1, 1]}  # and the candidate answers the request
    seen["v1"].clear(), seen["v2"].clear()
    lot = [_job("v1"), _job("v2"), _job("v1")]  # prod served two, the candidate one
    outcomes = asyncio.run(follower.pair_many(lot))
    assert seen == {"v1": [1], "v2": [2]}  # one untimed forward each, of the other side's
    assert [(o.prod_prediction, o.candidate_prediction) for o in outcomes] == [
        (7, 4),
        (3, 7),
        (7, 4),
    ]
    assert [o.served_by for o in outcomes] == ["prod", "candidate", "prod"]
    assert all(o.prod_latency_ms is None and o.candidate_latency_ms is None for o in outcomes)
    models["v2"].fail = True  # an untimed lot's failing candidate is still that side's error
    outcomes = asyncio.run(follower.pair_many([_job("v1"), _job("v2")]))
    assert [(o.prod_prediction, o.candidate_prediction) for o in outcomes] == [(7, None), (3, 7)]
    singles = 0  # untimed lots of one until TIMED_EVERY requests went untimed (5 so far)
    while follower.untimed < mirror.TIMED_EVERY:
        asyncio.run(follower.pair_many([_job("v1")]))
        singles += 1
    assert singles == mirror.TIMED_EVERY - 5
    seen["v1"].clear(), seen["v2"].clear()
    models["v2"].fail = False
    (timed,) = asyncio.run(follower.pair_many([_job("v1")]))  # the next timed lot
    assert seen == {"v1": [1, 1], "v2": [1, 1, 1]} and timed.candidate_latency_ms == 3.0


def test_the_budget_is_charged_the_time_the_lot_held_the_thread_not_its_wait(clock) -> None:
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 2.0, 0.0, 3)}
    inference = _Inference(models)
    follower = OnlineFollower(inference, None, None)  # type: ignore[arg-type]
    gate = threading.Event()

    def prod_batch() -> None:  # a prod batch holds the inference thread 50 ms first
        gate.wait(5)
        clock.advance(50.0)

    async def scenario() -> float:
        before = follower.budget.tokens
        inference.cache.executor.submit(prod_batch)
        pairing = asyncio.create_task(follower.pair_many([_job("v1")]))
        await asyncio.sleep(0.05)
        gate.set()
        await pairing
        return before - follower.budget.tokens

    charged = asyncio.run(scenario())
    # The probes' warm and timed forwards (1+1+2+2 ms) and the candidate's answer (2 ms).
    assert charged == pytest.approx(0.008)


class _CountingExecutor(ThreadPoolExecutor):
    """The inference thread, counting what is handed to it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.handed = 0

    def submit(self, fn, /, *args, **kwargs):
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


def test_a_lot_goes_to_the_inference_thread_in_short_hand_offs(clock) -> None:
    # As one hand-off a lot held the thread up to 55 ms at a shadow's 1.0, and the prod batches
    # queued behind it made the shadow's p99: a prod batch now waits behind one chunk at most.
    models = {"v1": _Model(clock, 1.0, 0.0, 3), "v2": _Model(clock, 2.0, 0.0, 4)}
    sizes: list[int] = []
    inner = models["v2"].forward
    models["v2"].forward = lambda images: (sizes.append(len(images)), inner(images))[1]
    inference = _Inference(models)
    inference.cache.executor = _CountingExecutor()
    follower = OnlineFollower(inference, None, None)  # type: ignore[arg-type]
    chunk = mirror_forwards.MIRROR_CHUNK
    lot = [_job("v1") for _ in range(2 * chunk + 1)]
    outcomes = asyncio.run(follower.pair_many(lot))  # the first lot is timed
    assert sizes == [1, 1, chunk, chunk, 1]  # the probe, then the lot in chunks
    assert inference.cache.executor.handed == 2 + 3  # two probes, three chunks
    assert [o.candidate_prediction for o in outcomes] == [4] * len(lot)
    assert outcomes[0].candidate_latency_ms == 2.0
