"""The canary_share gauge: the candidate's share as this API process routes it, in /metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from api.online_mirror import OnlineFollower
from domain.online.state import CanaryRun, OnlineState
from observability import exposition


class _Inference:  # only the prod map is read
    def __init__(self, prod: dict[str, str | None]) -> None:
        self.prod = prod


class _Runs:
    def __init__(self, states: list[OnlineState]) -> None:
        self.states = states

    async def running(self) -> list[OnlineState]:
        return self.states


def _canary(step: int) -> CanaryRun:
    return CanaryRun(
        canary_id="c-1",
        candidate_version="v2",
        prod_version="v1",
        steps=[5, 25, 50, 100],
        min_requests=10,
        max_duration_s=60.0,
        started_at=datetime.now(UTC),
        step=step,
    )


def _scraped(model: str) -> float | None:
    for line in exposition.render_prometheus()[0].decode().splitlines():
        if line.startswith(f'canary_share{{model_name="{model}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_canary_share_follows_the_step_and_reads_zero_after_the_canary() -> None:
    canary = OnlineState("share-m", canary=_canary(1))
    runs = _Runs([canary])
    follower = OnlineFollower(
        _Inference({"share-m": "v1", "share-idle": "v1", "gone": None}), None, runs
    )  # type: ignore[arg-type]
    asyncio.run(follower.refresh_once())
    assert follower.share_samples() == [
        (0.0, {"model_name": "share-idle"}),
        (0.25, {"model_name": "share-m"}),
    ]
    assert _scraped("share-m") == 0.25 and _scraped("share-idle") == 0.0
    assert _scraped("gone") is None  # no prod version: not served here

    canary.canary = _canary(3)
    asyncio.run(follower.refresh_once())
    assert _scraped("share-m") == 1.0
    runs.states = []  # ended (aborted or promoted): the router sends it nothing
    asyncio.run(follower.refresh_once())
    assert _scraped("share-m") == 0.0
