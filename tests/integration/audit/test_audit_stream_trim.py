"""The stream check while the workers trim: entries trimmed during an audit are not losses."""

from __future__ import annotations

import pytest

from storage.audit.reader import chunks
from storage.audit.streams import StreamCheck
from storage.projections import get_checkpoint
from storage.streams.relay import RELAY_CHECKPOINT
from tests.integration.audit.support import lifecycle, publish

pytestmark = pytest.mark.anyio


async def _check(p, between) -> tuple[list, dict]:
    """Run the stream check with batches of 2 entries, calling ``between`` after its start."""
    async with p.engine.connect() as conn:
        check = StreamCheck(p.redis, await get_checkpoint(conn, RELAY_CHECKPOINT), batch=2)
        await check.start()
        await between()
        async for rows in chunks(conn):
            await check.feed(rows)
        return await check.finish()


async def test_entries_trimmed_while_the_audit_runs_are_not_findings(private) -> None:
    await lifecycle(private, "first")
    await lifecycle(private, "second")
    assert await publish(private) == 10

    async def trim() -> None:  # as a worker's upkeep does once every group has processed them
        assert await private.redis.xtrim("registry.events", minid="7-0", approximate=False) == 6

    findings, checked = await _check(private, trim)
    assert findings == []
    # The first batch (read at the start), 7-0 to 10-0, and 3-0 and 4-0 only where the prefetch
    # of the second batch ran before the trim: the trimmed entries the audit had not read are
    # neither checked nor findings.
    assert 6 <= checked["registry.events"] <= 8


async def test_an_entry_deleted_above_the_trim_point_is_still_a_finding(private) -> None:
    await lifecycle(private, "first")
    await lifecycle(private, "second")
    await publish(private)

    async def trim_and_delete() -> None:
        await private.redis.xtrim("registry.events", minid="4-0", approximate=False)
        await private.redis.xdel("registry.events", "8-0")

    findings, _ = await _check(private, trim_and_delete)
    assert [(f.position, f.problem) for f in findings] == [(8, "registry.events lacks entry 8-0")]


async def test_a_run_of_lost_entries_across_batches_is_reported_entry_by_entry(private) -> None:
    await lifecycle(private, "first")
    await lifecycle(private, "second")
    await publish(private)

    async def lose() -> None:  # the trim point is read once per batch; each loss still counts
        # Beyond the first two batches (the second may be prefetched before this runs).
        await private.redis.xdel("registry.events", "6-0", "7-0", "8-0", "9-0")

    findings, checked = await _check(private, lose)
    assert [(f.position, f.problem) for f in findings] == [
        (n, f"registry.events lacks entry {n}-0") for n in (6, 7, 8, 9)
    ]
    assert checked["registry.events"] == 6  # 1-0 to 5-0 and 10-0
