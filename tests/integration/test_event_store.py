"""The PostgreSQL event log: ordering under concurrency, append-only, tamper evidence, rebuild."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from domain.errors import ConcurrencyConflict
from domain.registry.commands import PromoteModelVersion, RecordRegistration
from domain.registry.handlers import change_model
from events.base import EventMetadata
from events.registry import ModelVersionTagged
from storage import event_store
from storage.projections import rebuild_projections
from storage.tables import event_log, model_prod, model_versions

pytestmark = pytest.mark.anyio


def _meta() -> EventMetadata:
    return EventMetadata(actor="tester")


def _tag(stream: str, i: int) -> ModelVersionTagged:
    return ModelVersionTagged(model_name=stream, model_version="v1", tags={"i": str(i)})


async def test_concurrent_appenders_lose_nothing_and_follow_commit_order(platform) -> None:
    engine = platform.engine
    streams = [f"conc-{uuid.uuid4().hex[:8]}-{k}" for k in range(4)]
    writers, per_writer = 12, 15
    async with engine.connect() as conn:
        start = await conn.scalar(select(text("coalesce(max(position), 0)")).select_from(event_log))
    seen: list[int] = []
    done = asyncio.Event()

    async def follower() -> None:
        # Follows positions like the relay does; commit order == position order means no skips.
        after = start
        while True:
            async with engine.connect() as conn:
                rows = await event_store.read_after(conn, after, 1000)
            for r in rows:
                if r.stream_id in streams:
                    seen.append(r.position)
                after = r.position
            if done.is_set() and not rows:
                return
            await asyncio.sleep(0.001)

    async def writer(w: int) -> None:
        stream = streams[w % len(streams)]
        for i in range(per_writer):
            while True:
                async with engine.begin() as conn:
                    version = await conn.scalar(
                        select(text("coalesce(max(stream_version), 0)"))
                        .select_from(event_log)
                        .where(event_log.c.stream_id == stream)
                    )
                    try:
                        await event_store.append(conn, stream, version, [_tag(stream, i)], _meta())
                        break
                    except ConcurrencyConflict:
                        continue

    follow = asyncio.create_task(follower())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await follow

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(event_log.c.position, event_log.c.stream_id, event_log.c.stream_version)
                .where(event_log.c.stream_id.in_(streams))
                .order_by(event_log.c.position)
            )
        ).all()
    assert len(rows) == writers * per_writer
    assert len({r.position for r in rows}) == len(rows)
    for stream in streams:
        versions = [r.stream_version for r in rows if r.stream_id == stream]
        assert versions == list(range(1, len(versions) + 1)), "gaps or reordering in a stream"
    assert seen == [r.position for r in rows], "a follower skipped or reordered an event"


async def test_stale_expected_version_is_refused(platform) -> None:
    stream = f"occ-{uuid.uuid4().hex[:8]}"
    async with platform.engine.begin() as conn:
        await event_store.append(conn, stream, 0, [_tag(stream, 0)], _meta())
    with pytest.raises(ConcurrencyConflict):
        async with platform.engine.begin() as conn:
            await event_store.append(conn, stream, 0, [_tag(stream, 1)], _meta())


async def _register(platform, name: str, version: str, sha: str) -> None:
    cmd = RecordRegistration(
        model_name=name,
        model_version=version,
        artifact_uri=f"{name}/{version}/model.pt",
        sha256=sha,
        size_bytes=1,
    )
    await change_model(cmd, _meta(), platform.uow)


async def _projection_rows(platform) -> tuple[list, list]:
    async with platform.engine.connect() as conn:
        versions = (
            await conn.execute(
                select(model_versions).order_by(
                    model_versions.c.model_name, model_versions.c.model_version
                )
            )
        ).all()
        prods = (await conn.execute(select(model_prod).order_by(model_prod.c.model_name))).all()
    return [tuple(r) for r in versions], [tuple(r) for r in prods]


async def test_twenty_concurrent_promotes_leave_one_prod_and_replay_identically(
    platform, model_name
) -> None:
    versions = [f"v{i}" for i in range(20)]
    for i, v in enumerate(versions):
        await _register(platform, model_name, v, f"{i:064x}")
    await asyncio.gather(
        *(
            change_model(
                PromoteModelVersion(model_name=model_name, model_version=v, metadata=_meta()),
                _meta(),
                platform.uow,
            )
            for v in versions
        )
    )
    listed = await platform.queries.list_versions(model_name)
    prods = [v.model_version for v in listed if v.status == "prod"]
    assert len(prods) == 1
    history = await platform.queries.history(model_name)
    promoted = [h for h in history if h.event_type == "ModelVersionPromoted"]
    assert len(promoted) == 20
    assert (
        promoted[-1].details["model_version"]
        == prods[0]
        == await platform.queries.prod_version(model_name)
    )
    # Each promotion names the one before it as previous prod: a single serial chain.
    chain = [h.details["previous_prod"] for h in promoted]
    assert chain[1:] == [h.details["model_version"] for h in promoted[:-1]]

    before = await _projection_rows(platform)
    await rebuild_projections(platform.engine)
    after = await _projection_rows(platform)
    assert after == before
    assert any(r[0] == model_name for r in after[0])


async def test_update_and_delete_are_refused_by_the_trigger(platform, model_name) -> None:
    await _register(platform, model_name, "v1", "a" * 64)
    for sql in (
        "UPDATE event_log SET actor = 'mallory' WHERE stream_id = :s",
        "DELETE FROM event_log WHERE stream_id = :s",
        "TRUNCATE event_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with platform.engine.begin() as conn:
                await conn.execute(text(sql), {"s": f"model-{model_name}"})
    history = await platform.queries.history(model_name)
    assert history[0].actor == "tester"


async def test_edited_row_is_detected_when_the_trigger_is_bypassed(platform, model_name) -> None:
    await _register(platform, model_name, "v1", "a" * 64)
    await _register(platform, model_name, "v2", "b" * 64)
    async with platform.engine.connect() as conn:
        assert (await event_store.verify_chain(conn)).ok
        await conn.rollback()
        trans = await conn.begin()
        try:
            # Bypass the trigger inside a transaction we roll back: nothing stored is harmed.
            await conn.execute(text("ALTER TABLE event_log DISABLE TRIGGER event_log_append_only"))
            position = await conn.scalar(
                select(event_log.c.position)
                .where(event_log.c.stream_id == f"model-{model_name}")
                .order_by(event_log.c.position)
                .limit(1)
            )
            await conn.execute(
                text("UPDATE event_log SET actor = 'mallory' WHERE position = :p"), {"p": position}
            )
            report = await event_store.verify_chain(conn)
        finally:
            await trans.rollback()
        assert not report.ok
        assert report.breaks[0].position == position
        assert "edited" in report.breaks[0].problem
        assert (await event_store.verify_chain(conn)).ok
