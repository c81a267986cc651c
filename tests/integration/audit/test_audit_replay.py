"""Replay: the trail from the log and from the streams, paged over HTTP, and a model at a moment."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import ClassVar

import msgspec
import pytest

from api.app import create_app
from domain.audit.reports import TrailFilter
from domain.jobs.commands import SubmitBatchJob
from events import codec
from events.base import Event, EventMetadata
from events.upcasting import register_upcaster
from storage import event_store
from tests.e2e.conftest import app_client
from tests.integration.audit.support import cli, lifecycle, publish

pytestmark = pytest.mark.anyio


async def _trail(p, **kw) -> list:
    return [e async for chunk in p.audit.trail(TrailFilter(**kw)) for e in chunk]


async def test_the_trail_is_filtered_by_position_time_model_type_and_actor(private) -> None:
    await lifecycle(private, "alpha")
    await lifecycle(private, "beta")
    everything = await _trail(private)
    assert [e.position for e in everything] == list(range(1, 11))
    first = everything[0]
    assert (first.event_type, first.model_name, first.model_version) == (
        "ModelVersionRegistered",
        "alpha",
        "v1",
    )
    rollback = everything[4]
    assert (rollback.model_version, rollback.reason) == ("v1", "v2 regressed")
    assert [e.position for e in await _trail(private, model="beta")] == list(range(6, 11))
    promoted = await _trail(private, event_type="ModelVersionPromoted")
    assert [e.position for e in promoted] == [3, 4, 8, 9]
    assert [e.position for e in await _trail(private, after=8)] == [9, 10]
    since = everything[7].recorded_at
    assert [e.position for e in await _trail(private, since=since)] == [8, 9, 10]
    assert await _trail(private, actor="nobody") == []
    assert await _trail(private, model="gamma") == []


async def test_job_events_carry_their_model_and_json_lines_decode(private) -> None:
    await lifecycle(private)
    meta = EventMetadata(actor="submitter")
    await private.bus.handle(
        SubmitBatchJob(
            model_name="audited",
            dataset_id="fashion_mnist_100",
            model_version="v1",
            batch_size=32,
            shard_size=50,
            limited=False,
            metadata=meta,
        )
    )
    job = (await _trail(private, event_type="BatchJobSubmitted"))[0]
    assert (job.model_name, job.model_version, job.actor) == ("audited", "v1", "submitter")
    assert [e.event_type for e in await _trail(private, model="audited")][-1] == "BatchJobSubmitted"
    done = cli(private, "replay", "--json", "--model", "audited", "--from", "5")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [x["position"] for x in lines] == [5, 6]
    assert lines[1]["payload"]["dataset_id"] == "fashion_mnist_100"
    assert "2 events" in done.stderr
    plain = cli(private, "replay", "--type", "ModelVersionRolledBack")
    assert "ModelVersionRolledBack" in plain.stdout and "reason=v2 regressed" in plain.stdout
    bad = cli(private, "replay", "--type", "Nope")
    assert bad.returncode == 1 and "unknown event type 'Nope'" in bad.stderr
    bad = cli(private, "replay", "--since", "last tuesday")
    assert bad.returncode == 1 and "--since 'last tuesday' is not an ISO 8601 time" in bad.stderr


async def test_stream_replay_reports_entries_that_differ(private) -> None:
    await lifecycle(private)
    await publish(private)
    same = cli(private, "replay", "--source", "stream")
    assert same.returncode == 0, same.stderr
    assert len(same.stdout.splitlines()) == 6  # header and five events
    entries = await private.redis.xrange("registry.events")
    await private.redis.delete("registry.events")
    for entry_id, fields in entries:
        if entry_id == b"2-0":
            fields = {**fields, b"reason": b"added"}
        await private.redis.xadd("registry.events", fields, id=entry_id)
    differs = cli(private, "replay", "--source", "stream", "--json")
    assert differs.returncode == 4
    assert "registry.events 2-0 differs from the log in extra field reason" in differs.stderr
    assert len(differs.stdout.splitlines()) == 5


async def test_events_are_paged_over_http_by_position(private) -> None:
    await lifecycle(private, "alpha")
    await lifecycle(private, "beta")
    async with app_client(create_app(private, run_relay=False)) as client:
        seen, after = [], 0
        while after is not None:
            page = (await client.get("/events", params={"after": after, "limit": 3})).json()
            seen += [e["position"] for e in page["events"]]
            after = page["next_after"]
        assert seen == list(range(1, 11))
        page = (await client.get("/events?model=beta&type=ModelVersionPromoted")).json()
        assert [e["position"] for e in page["events"]] == [8, 9] and page["next_after"] is None
        for query, status, text in (
            ("?limit=0", 400, "limit"),
            ("?limit=5000", 400, "limit"),
            ("?after=-1", 400, "after"),
            ("?type=Nope", 400, "unknown event type 'Nope'"),
            ("?model=..%2Fx", 400, "model"),
        ):
            response = await client.get("/events" + query)
            assert response.status_code == status, query
            assert text in response.text
        doc = (await client.get("/asyncapi.json")).json()
        assert (
            doc["asyncapi"] == "3.0.0" and "ModelVersionPromoted" in doc["components"]["messages"]
        )


async def test_a_model_at_a_moment_across_promote_and_rollback(private) -> None:
    await lifecycle(private)
    trail = await _trail(private)
    moments = [e.recorded_at + timedelta(microseconds=1) for e in trail]
    expected = [(1, None), (2, None), (2, "v1"), (2, "v2"), (2, "v1")]
    for moment, (versions, prod) in zip(moments, expected, strict=True):
        view = await private.audit.model_at("audited", moment)
        assert (len(view.versions), view.prod_version) == (versions, prod), moment
    promoted_v2 = moments[3]
    done = cli(private, "history", "audited", "--at", promoted_v2.isoformat())
    assert done.returncode == 0, done.stderr
    assert "prod: v2" in done.stdout and "v1           staging" in done.stdout
    async with app_client(create_app(private, run_relay=False)) as client:
        body = (await client.get("/models/audited", params={"at": moments[4].isoformat()})).json()
        assert body["prod_version"] == "v1" and body["as_of_position"] == 5
        assert {v["model_version"]: v["status"] for v in body["versions"]} == {
            "v1": "prod",
            "v2": "staging",
        }
        now = (await client.get("/models/audited")).json()
        assert now["prod_version"] == "v1"
        early = await client.get("/models/audited", params={"at": "2000-01-01"})
        assert early.status_code == 404 and "did not exist yet" in early.text
        assert (await client.get("/models/nope")).status_code == 404
        bad = await client.get("/models/audited", params={"at": "soon"})
        assert bad.status_code == 400 and "not an ISO 8601 time" in bad.text


def _probe(version: int) -> type[Event]:
    """The event type AuditProbe as version 1 wrote it, or as version 2 (``region`` added)."""
    if version == 1:

        class AuditProbe(Event, frozen=True, kw_only=True):
            schema_version: ClassVar[int] = 1
            model_name: str

    else:

        class AuditProbe(Event, frozen=True, kw_only=True):  # type: ignore[no-redef]
            schema_version: ClassVar[int] = 2
            model_name: str
            region: str

    return AuditProbe


async def test_a_stored_v1_event_is_upcast_to_v2(private, monkeypatch) -> None:
    v1, v2 = _probe(1), _probe(2)
    monkeypatch.setitem(codec._EVENT_TYPES, "AuditProbe", v1)
    monkeypatch.setattr(codec, "_decoders", {})
    async with private.engine.begin() as conn:
        await event_store.append(
            conn, "probe-1", 0, [v1(model_name="m")], EventMetadata(actor="old-code")
        )
    # The code moves on: version 2 adds ``region``; stored bytes stay as they were.
    monkeypatch.setitem(codec._EVENT_TYPES, "AuditProbe", v2)
    monkeypatch.setattr(codec, "_decoders", {})
    monkeypatch.setattr("events.upcasting._UPCASTERS", {})
    register_upcaster("AuditProbe", 1, lambda d: {**d, "region": "eu-west (assumed)"})
    async with private.engine.connect() as conn:
        (stored,) = await event_store.load_stream(conn, "probe-1")
        assert (await event_store.verify_chain(conn)).ok  # the hash is over the stored bytes
    assert stored.event == v2(model_name="m", region="eu-west (assumed)")
    (entry,) = await _trail(private, event_type="AuditProbe")
    payload = msgspec.json.decode(entry.payload)
    assert (entry.schema_version, payload["region"]) == (1, "eu-west (assumed)")
    assert msgspec.json.decode(codec.encode_event(stored.event))["type"] == "AuditProbe"
