"""Issue 21, hole 4: a stream entry forged beyond the log's head.

Before: the prod follower applied a forged ModelVersionPromoted (switching what /predict
serves), `just audit` never looked above the relay's checkpoint, and the relay, refused on
every later XADD, rewound and logged an error every second. Now the follower reads prod from
PostgreSQL, the audit names the entry and the blocked stream, the relay logs the state once
and `just relay --rebuild STREAM` repairs it.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from api.hot_swap import ProdFollower
from bootstrap import build_inference
from domain.registry.commands import PromoteModelVersion
from domain.registry.handlers import change_model
from events.codec import encode_event
from events.registry import ModelVersionPromoted
from events.streams import REGISTRY_STREAM
from storage.streams import refusals
from storage.streams.relay import MARKER_KEY
from tests.integration.audit.support import META, cli, publish, register

pytestmark = pytest.mark.anyio
FORGED = "999999-0"


async def _promote(p, version: str) -> None:
    cmd = PromoteModelVersion(model_name="served", model_version=version, metadata=META)
    await change_model(cmd, META, p.uow)


async def _until(condition, what: str, task: asyncio.Task | None = None) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        assert task is None or not task.done(), task.exception()
        await asyncio.sleep(0.02)


def _relay_errors(logs: list[dict]) -> list[str]:
    return [
        e["event"]
        for e in logs
        if e["log_level"] in ("error", "warning") and e["event"].startswith(("relay", "redis"))
    ]


async def test_a_forged_promotion_is_not_served_and_the_stream_is_repaired(private) -> None:
    p = private
    await register(p, "served", "v1", 1)
    await register(p, "served", "v2", 2)
    await _promote(p, "v1")
    await publish(p)
    inference = build_inference(p)
    inference.set_prod("served", "v1")
    follower = ProdFollower(inference, p.redis, p.queries, block_ms=50, poll_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.follow(stop))
    try:
        await _until(lambda: follower.last_id == "3-0", "the follower never started", task)
        # Someone with Redis access adds a malformed entry and a promotion nobody made.
        await p.redis.xadd(REGISTRY_STREAM, {"type": "ModelVersionPromoted"}, id="900000-0")
        forged = ModelVersionPromoted(model_name="served", model_version="v2")
        fields = {"type": "ModelVersionPromoted", "payload": encode_event(forged)}
        await p.redis.xadd(REGISTRY_STREAM, {**fields, "position": "999999"}, id=FORGED)
        await _until(lambda: follower.last_id == FORGED, "the forged entry was not read", task)
        assert inference.prod["served"] == "v1", "a forged entry switched prod"
        assert follower.applied <= 3  # never past the log's head

        report = await p.audit.audit()
        problems = [f.problem for f in report.findings if f.check == "streams"]
        assert f"registry.events holds entry {FORGED} the log does not have" in " ".join(problems)
        assert any("last id 999999-0 is above the log's head 3" in x for x in problems)
        # Deleting the entry does not unblock the stream: its last id stays above the log.
        await p.redis.xdel(REGISTRY_STREAM, FORGED, "900000-0")
        with capture_logs() as logs:
            await _promote(p, "v2")
            assert await publish(p) == 1  # refused: skipped, logged once, counted
            await _promote(p, "v1")
            assert await publish(p) == 1
        assert _relay_errors(logs) == ["relay_stream_blocked"], logs
        states = await refusals.load(p.redis)
        assert states["registry.events"]["state"] == "blocked"
        assert states["registry.events"]["refused"] == 2
        samples = {(x["stream"], x["state"]): v for v, x in await refusals.gauge_samples(p.redis)}
        assert samples[("registry.events", "blocked")] == 2.0
        assert set(samples.values()) == {0.0, 2.0}
        report = await p.audit.audit()
        assert report.checks["relay"].startswith("registry.events blocked since position 4")
        blocked = [f for f in report.findings if "above the log's head" in f.problem]
        assert blocked and "just relay --rebuild registry.events" in blocked[0].problem

        done = cli(p, "relay", "--rebuild", "registry.nope")
        assert done.returncode == 1 and "unknown event stream 'registry.nope'" in done.stderr
        done = cli(p, "relay", "--rebuild", "registry.events")
        assert done.returncode == 0, done.stderr
        assert "rebuilt registry.events: 5 entries from the log (positions 1 to 5)" in done.stdout
        # The follower notices the stream went below where it read, and reads prod again.
        await _promote(p, "v2")
        await publish(p)
        await _until(lambda: inference.prod["served"] == "v2", "v2 never became prod", task)
        report = await p.audit.audit()
        assert report.ok, report.findings
        assert report.checks["relay"] == "every stream takes its entries"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await inference.cache.aclose()


async def test_a_rewind_over_trimmed_and_present_entries_logs_nothing(private) -> None:
    p = private
    await register(p, "served", "v1", 1)
    await register(p, "served", "v2", 2)
    await _promote(p, "v1")
    await publish(p)
    await p.redis.xtrim(REGISTRY_STREAM, maxlen=1)  # delivered entries trimmed away
    await p.redis.delete(MARKER_KEY)  # the relay now believes Redis lost its data
    with capture_logs() as logs:
        assert await publish(p) == 3  # republished from the start: every XADD refused
    assert _relay_errors(logs) == ["redis_lost_data_republishing"], logs
    assert await refusals.load(p.redis) == {}
    assert (await p.audit.audit()).ok
