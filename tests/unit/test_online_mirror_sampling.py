"""Which answered requests the follower pairs during a canary (api/online_mirror.py ``after``).

The candidate's answers are all paired; prod's are sampled at share/(100 - share) so a step
pairs about as many of prod's requests as of the candidate's (labelled either way, each pair is
evidence); a shadow samples prod's at its fraction.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

import api.online_mirror as mirror
from api.online_hooks import Served
from api.online_mirror import OnlineFollower
from domain.online.state import CanaryRun, ShadowRun

N = 4000


def _canary(share: int) -> CanaryRun:
    return CanaryRun(
        canary_id="c-1",
        candidate_version="v2",
        prod_version="v1",
        steps=[share, 100] if share < 100 else [100],
        min_requests=1,
        max_duration_s=60,
        started_at=datetime.now(UTC),
    )


def _served(i: int, version: str, routed: bool) -> Served:
    return Served(
        request_id=f"r-{i}",
        model_name="m",
        model_version=version,
        prod_version="v1",
        input=np.zeros((28, 28), dtype=np.uint8),
        prediction=1,
        scores=[0.0] * 10,
        latency_ms=1.0,
        routed=routed,
    )


def _follower(**runs) -> OnlineFollower:
    f = OnlineFollower(None, None, None, queue_size=N * 2)  # type: ignore[arg-type]
    f.canaries = runs.get("canaries", {})
    f.shadows = runs.get("shadows", {})
    return f


@pytest.mark.parametrize(("share", "low", "high"), [(20, 0.22, 0.28), (50, 1.0, 1.0)])
def test_a_canary_pairs_a_sample_of_prods_requests_as_large_as_the_candidates(
    share: int, low: float, high: float, monkeypatch
) -> None:
    monkeypatch.setattr(mirror.random, "random", random.Random(7).random)
    f = _follower(canaries={"m": _canary(share)})
    kept = []
    for i in range(N):
        s = _served(i, "v1", routed=False)
        f.after(s)
        kept.append(s.keep)
    assert low <= f.queue.qsize() / N <= high  # 1 in 4 at 20%, all at 50%
    assert sum(kept) == f.queue.qsize()  # what is paired is kept, so feedback can label it
    job = f.queue.get_nowait()
    assert (job.run_id, job.step, job.prod_version, job.candidate_version) == ("c-1", 0, "v1", "v2")


def test_every_answer_of_the_candidate_is_paired_and_a_pinned_request_never() -> None:
    f = _follower(canaries={"m": _canary(100)})
    for i in range(50):
        f.after(_served(i, "v2", routed=True))
    f.after(_served(99, "v1", routed=False))  # at 100% no prod answer is sampled
    f.after(_served(98, "v1", routed=True))  # asked for by version: not the canary's to pair
    assert f.queue.qsize() == 50


def test_a_shadow_still_samples_prods_requests_at_its_fraction(monkeypatch) -> None:
    monkeypatch.setattr(mirror.random, "random", random.Random(3).random)
    shadow = ShadowRun(
        shadow_id="s-1",
        candidate_version="v3",
        prod_version="v1",
        fraction=0.1,
        started_at=datetime.now(UTC),
    )
    f = _follower(shadows={"m": shadow})
    for i in range(N):
        f.after(_served(i, "v1", routed=False))
    assert 0.08 <= f.queue.qsize() / N <= 0.12
    assert f.queue.get_nowait().run_id == "s-1"


def test_a_runs_candidate_is_loaded_as_soon_as_the_run_is_seen_and_only_once() -> None:
    from domain.online.state import OnlineState

    loads: list[tuple[str, str]] = []

    class Inference:
        async def resolve(self, name: str, version: str):
            loads.append((name, version))
            if version == "v9":
                raise RuntimeError("artifact missing")

    class Runs:
        states = [OnlineState(model_name="m", canary=_canary(20))]

        async def running(self):
            return self.states

    async def scenario() -> None:
        runs = Runs()
        f = OnlineFollower(Inference(), None, runs)  # type: ignore[arg-type]
        await f.refresh_once()
        await f.refresh_once()  # seen again: not loaded again
        await asyncio.sleep(0)
        broken = msgspec.structs.replace(_canary(20), candidate_version="v9")
        runs.states = [OnlineState(model_name="m", canary=broken)]
        await f.refresh_once()  # a failing load is logged, never raised
        await asyncio.sleep(0)
        assert f.canaries["m"].candidate_version == "v9"

    asyncio.run(scenario())
    assert loads == [("m", "v2"), ("m", "v9")]
