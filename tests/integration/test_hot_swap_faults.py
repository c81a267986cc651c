"""The prod follower after Redis lost its data: the relay republishes the whole log, and the
follower must not replay promotions older than what it reconciled from PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.hot_swap import ProdFollower
from bootstrap import build_inference
from domain.registry.commands import PromoteModelVersion, RollbackModel
from events.base import EventMetadata
from events.streams import REGISTRY_STREAM
from storage.streams.relay import MARKER_KEY
from tests.integration.registry_support import register_versions

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def test_a_republished_log_does_not_replay_old_promotions(
    platform, model_name, state_dict_file
) -> None:
    p = platform
    await register_versions(p, model_name, state_dict_file)
    for version in ("v1", "v2"):
        await p.bus.handle(
            PromoteModelVersion(model_name=model_name, model_version=version, metadata=META)
        )
    await p.bus.handle(RollbackModel(model_name=model_name, metadata=META))  # prod: v1 again
    await p.ops.publish_pending()

    inference = build_inference(p)
    inference.set_prod(model_name, "v1")  # this process serves the model
    follower = ProdFollower(inference, p.redis, p.queries, block_ms=50, poll_s=60)
    switched: list[str | None] = []
    switch = follower.switch

    async def recording(name: str, version: str | None) -> None:
        if name == model_name and inference.prod.get(name) != version:
            switched.append(version)  # a real switch, not a reconciliation finding it current
        await switch(name, version)

    follower.switch = recording  # type: ignore[method-assign]
    # Redis lost the registry stream and the relay's marker: the whole log is republished.
    await p.redis.delete(REGISTRY_STREAM, MARKER_KEY)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.follow(stop))
    try:
        await asyncio.sleep(0.2)  # the follower finds the stream empty and reconciles
        await p.ops.publish_pending()
        # A new promotion after the republished ones: once it is applied, all were read.
        await p.bus.handle(
            PromoteModelVersion(model_name=model_name, model_version="v3", metadata=META)
        )
        await p.ops.publish_pending()
        deadline = time.monotonic() + 30
        while inference.prod.get(model_name) != "v3":
            assert time.monotonic() < deadline, f"v3 never became prod here: {switched}"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await inference.cache.aclose()
    assert switched == ["v3"], f"old promotions were replayed: {switched}"
