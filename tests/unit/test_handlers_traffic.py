"""Traffic handlers on fakes: capture policies, feedback (all or none), frozen datasets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.traffic.commands import (
    CapturedRow,
    FreezeTrafficDataset,
    GetCapturePolicy,
    RecordCaptured,
    RecordFeedback,
    SetCapturePolicy,
    decode_rows,
    encode_rows,
)
from domain.traffic.handlers import (
    capture_policy,
    content_digest,
    freeze_traffic_dataset,
    record_captured,
    record_feedback,
    set_capture_policy,
)
from domain.traffic.policy import Captured, fold_policy
from domain.traffic.ports import TrafficPorts
from events.base import EventMetadata, RecordedEvent
from tests.unit.wiring import RegistryFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _recorded(stream_id: str, version: int, event) -> RecordedEvent:
    return RecordedEvent(
        position=version,
        stream_id=stream_id,
        stream_version=version,
        event_id=uuid.uuid4(),
        recorded_at=NOW,
        metadata=META,
        event=event,
    )


class _Row:
    def __init__(self, request_id: str, label: int | None, model: str = "m") -> None:
        self.request_id, self.label, self.model = request_id, label, model
        self.input, self.input_dtype = bytes(784), "uint8"


class FakeTrafficLog:
    def __init__(self, store: FakeCaptured) -> None:
        self.streams: dict[str, list[RecordedEvent]] = {}
        self.store = store

    async def load_policy(self, model_name):
        return fold_policy(model_name, self.streams.get(f"capture-{model_name}", []))

    async def save_policy(self, state, event, metadata):
        stream = self.streams.setdefault(f"capture-{state.model_name}", [])
        assert len(stream) == state.stream_version
        stream.append(_recorded(f"capture-{state.model_name}", state.stream_version + 1, event))
        return [stream[-1]]

    async def policies(self):
        return []

    async def freeze(self, name, model_name, since, until, labelled_only, build, metadata):
        stream_id = f"traffic-dataset-{name}"
        if stream_id in self.streams:
            raise Conflict(f"dataset traffic:{name} exists already")
        rows = [
            _Row(rid, r.label)
            for rid, r in self.store.rows.items()
            if r.model == model_name and (r.label is not None or not labelled_only)
        ]
        self.streams[stream_id] = [_recorded(stream_id, 1, build(rows))]
        return self.streams[stream_id]


class FakeCaptured:
    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.expired: set[str] = set()

    async def record(self, rows):
        new = [r for r in rows if r.request_id not in self.rows]
        for r in new:
            self.rows[r.request_id] = _Row(r.request_id, None, r.model_name)
        return len(new)

    async def label(self, items, judge, now):
        live = {rid: r for rid, r in self.rows.items() if rid not in self.expired}
        found = {rid: Captured(10, live[rid].label) for rid, _ in items if rid in live}
        writes = judge(found)
        for rid, label in writes:
            self.rows[rid].label = label
        return len(writes)

    async def labels_for(self, ids):
        return {
            rid: self.rows[rid].label
            for rid in ids
            if rid in self.rows and self.rows[rid].label is not None
        }


@pytest.fixture
async def traffic():
    reg = RegistryFakes()
    await reg.register("v1")
    captured = FakeCaptured()
    return TrafficPorts(
        uow=reg.uow, log=FakeTrafficLog(captured), captured=captured, clock=reg.clock
    )


def _policy(**kw) -> SetCapturePolicy:
    values = {"model_name": "m", "fraction": 0.5, "max_per_s": 20.0, "retention_days": 7}
    return SetCapturePolicy(**{**values, **kw}, metadata=META)


def _row(rid: str) -> CapturedRow:
    return CapturedRow(
        request_id=rid,
        model_name="m",
        model_version="v1",
        captured_at=NOW,
        input=bytes(784),
        input_dtype="uint8",
        prediction=3,
        scores=[0.0] * 10,
        latency_ms=1.0,
        retention_days=7,
    )


async def test_a_policy_is_recorded_once_and_read_back(traffic) -> None:
    assert (await capture_policy(GetCapturePolicy(model_name="m"), traffic)).fraction == 0
    recorded = await set_capture_policy(_policy(), traffic)
    assert type(recorded[0].event).__name__ == "CapturePolicySet"
    assert await set_capture_policy(_policy(), traffic) == []  # a repeat records nothing
    p = await capture_policy(GetCapturePolicy(model_name="m"), traffic)
    assert (p.fraction, p.max_per_s, p.retention_days) == (0.5, 20.0, 7)
    assert len(await set_capture_policy(_policy(fraction=0.0), traffic)) == 1  # stop capture


@pytest.mark.parametrize(
    ("kw", "word"),
    [
        ({"fraction": -0.1}, "fraction"),
        ({"fraction": True}, "fraction"),
        ({"max_per_s": 0}, "max_per_s"),
        ({"max_per_s": float("nan")}, "max_per_s"),
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": 1.5}, "retention_days"),
    ],
)
async def test_a_bad_policy_is_refused_naming_the_field(traffic, kw, word) -> None:
    with pytest.raises(InvalidInput, match=word):
        await set_capture_policy(_policy(**kw), traffic)


async def test_a_policy_for_an_unknown_model_is_404(traffic) -> None:
    with pytest.raises(NotFound):
        await set_capture_policy(_policy(model_name="nope"), traffic)


async def test_feedback_is_all_or_none_and_the_first_label_stands(traffic) -> None:
    assert (
        await record_captured(RecordCaptured(rows=[_row("a"), _row("b"), _row("c")]), traffic) == 3
    )
    assert await record_captured(RecordCaptured(rows=[_row("a")]), traffic) == 0  # redelivered
    assert await record_feedback(RecordFeedback(items=[("a", 1)]), traffic) == 1
    assert await record_feedback(RecordFeedback(items=[("a", 1), ("b", 2)]), traffic) == 1
    with pytest.raises(Conflict, match=r"a \(labelled 1, now 3\)"):
        await record_feedback(RecordFeedback(items=[("a", 3), ("c", 3)]), traffic)
    with pytest.raises(NotFound, match="zz"):
        await record_feedback(RecordFeedback(items=[("c", 3), ("zz", 1)]), traffic)
    with pytest.raises(InvalidInput, match=r"c \(label 10, classes 0..9\)"):
        await record_feedback(RecordFeedback(items=[("c", 10)]), traffic)
    with pytest.raises(InvalidInput, match="more than once: c"):
        await record_feedback(RecordFeedback(items=[("c", 1), ("c", 1)]), traffic)
    with pytest.raises(InvalidInput, match="invalid request_id"):
        await record_feedback(RecordFeedback(items=[("c d", 1)]), traffic)
    with pytest.raises(InvalidInput, match="no feedback"):
        await record_feedback(RecordFeedback(items=[]), traffic)
    assert await traffic.captured.labels_for(["a", "b", "c"]) == {"a": 1, "b": 2}  # c untouched
    traffic.captured.expired.add("c")
    with pytest.raises(NotFound, match="expired"):
        await record_feedback(RecordFeedback(items=[("c", 1)]), traffic)


async def test_a_frozen_dataset_has_its_manifest_and_digest(traffic) -> None:
    await record_captured(RecordCaptured(rows=[_row("a"), _row("b")]), traffic)
    await record_feedback(RecordFeedback(items=[("b", 4)]), traffic)
    cmd = FreezeTrafficDataset(model_name="m", dataset_id="week-1", metadata=META)
    event = (await freeze_traffic_dataset(cmd, traffic))[0].event
    assert (event.dataset_id, event.request_ids, event.labelled) == (
        "traffic:week-1",
        ["a", "b"],
        1,
    )
    assert event.digest == content_digest([_Row("a", None), _Row("b", 4)])
    assert event.digest != content_digest([_Row("a", None), _Row("b", 5)])  # a label counts
    with pytest.raises(Conflict):
        await freeze_traffic_dataset(cmd, traffic)
    only = FreezeTrafficDataset(
        model_name="m", dataset_id="traffic:l", labelled_only=True, metadata=META
    )
    assert (await freeze_traffic_dataset(only, traffic))[0].event.request_ids == ["b"]


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"dataset_id": "traffic:Bad Name"}, InvalidInput),
        ({"model_name": "nope"}, NotFound),
        ({"since": NOW, "until": NOW - timedelta(days=1)}, InvalidInput),
    ],
)
async def test_bad_freezes_are_refused(traffic, kw, error) -> None:
    cmd = FreezeTrafficDataset(**{"model_name": "m", "dataset_id": "x", **kw}, metadata=META)
    with pytest.raises(error):
        await freeze_traffic_dataset(cmd, traffic)


async def test_an_empty_freeze_says_what_to_do(traffic) -> None:
    cmd = FreezeTrafficDataset(model_name="m", dataset_id="x", metadata=META)
    with pytest.raises(InvalidInput, match="just capture"):
        await freeze_traffic_dataset(cmd, traffic)


def test_captured_rows_round_trip_through_the_stream_encoding() -> None:
    rows = [_row("a"), _row("b")]
    assert decode_rows(encode_rows(rows)) == rows
