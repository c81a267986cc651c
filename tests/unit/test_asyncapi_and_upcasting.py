"""The AsyncAPI document covers every event type with examples that decode; upcasters run."""

from __future__ import annotations

from typing import ClassVar

import msgspec
import pytest

from events import codec
from events.asyncapi import WORK_MESSAGES, document, document_json
from events.base import Event
from events.codec import decode_event, event_types
from events.streams import area_stream
from events.upcasting import register_upcaster, upcast


def test_every_event_type_and_stream_is_in_the_document() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    types = event_types()
    # Besides the events, only work messages (checkpoint announcements, captured requests).
    assert set(doc["components"]["messages"]) == set(types) | WORK_MESSAGES
    assert doc["channels"]["audit_checkpoints"]["address"] == "audit.checkpoints"
    addresses = {c["address"]: c for c in doc["channels"].values()}
    for name, cls in types.items():
        channel = addresses[area_stream(cls.area)]
        assert name in channel["messages"]
        message = doc["components"]["messages"][name]
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        assert name in doc["components"]["schemas"]
        assert message["x-schema-version"] == cls.schema_version
    for op in doc["operations"].values():
        assert op["action"] == "receive"
        assert op["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]


def test_every_example_decodes_to_its_type() -> None:
    doc = msgspec.json.decode(document_json())
    for name, message in doc["components"]["messages"].items():
        assert message["examples"], name
        if name == "CheckpointSigned":
            assert set(message["examples"][0]["payload"]) == {"size", "root", "note"}
            continue
        if name in WORK_MESSAGES:
            continue
        for example in message["examples"]:
            event = decode_event(name, msgspec.json.encode(example["payload"]))
            assert type(event).__name__ == name


def test_the_online_and_traffic_streams_and_their_messages_are_documented() -> None:
    from events.online import PairedOutcome
    from events.traffic import CapturedRow

    doc = msgspec.json.decode(document_json())
    channels = {c["address"]: set(c["messages"]) for c in doc["channels"].values()}
    assert channels["online.events"] == {
        "ShadowStarted",
        "ShadowStopped",
        "ShadowVerdict",
        "CanaryStarted",
        "CanaryStepped",
        "CanaryAborted",
        "CanaryCompleted",
    }
    assert channels["traffic.events"] == {"CapturePolicySet", "TrafficDatasetFrozen"}
    assert channels["traffic.captured"] == {"RequestsCaptured"}
    assert channels["shadow.outcomes"] == {"OutcomesPaired"}
    assert channels["audit.checkpoints"] == {"CheckpointSigned"}
    # The work messages' examples have the fields of the rows the consumers decode (a
    # captured input's bytes are a placeholder); a paired outcome's example decodes.
    messages = doc["components"]["messages"]
    for name, row in (("RequestsCaptured", CapturedRow), ("OutcomesPaired", PairedOutcome)):
        (example,) = messages[name]["examples"]
        assert set(example["payload"][0]) == set(row.__struct_fields__), name
    (paired,) = messages["OutcomesPaired"]["examples"]
    assert msgspec.convert(paired["payload"], list[PairedOutcome], strict=False)


def test_the_entry_headers_name_the_relay_fields() -> None:
    headers = document()["components"]["schemas"]["StreamEntry"]["properties"]
    assert {"event_id", "type", "position", "hash", "trace_context"} <= set(headers)
    assert "payload" not in headers  # the payload is the message itself


class ProbeV1(Event, frozen=True, kw_only=True, tag="Probe"):
    """The shape written before ``region`` existed."""

    schema_version: ClassVar[int] = 1
    name: str


class ProbeV2(Event, frozen=True, kw_only=True, tag="Probe"):
    """The current shape: ``region`` was added in version 2."""

    schema_version: ClassVar[int] = 2
    name: str
    region: str


def test_decoding_dispatches_on_type_and_schema_version(monkeypatch) -> None:
    monkeypatch.setitem(codec._EVENT_TYPES, "Probe", ProbeV2)
    monkeypatch.setattr(codec, "_decoders", {})
    monkeypatch.setattr("events.upcasting._UPCASTERS", {})
    stored_v1 = codec.encode_event(ProbeV1(name="a"))  # as written before ``region`` existed
    assert stored_v1 == b'{"type":"Probe","name":"a"}'
    with pytest.raises(ValueError, match="no upcaster for Probe from schema version 1"):
        decode_event("Probe", stored_v1, 1)
    register_upcaster("Probe", 1, lambda d: {**d, "region": "unknown"})
    event = decode_event("Probe", stored_v1, 1)
    assert isinstance(event, ProbeV2) and event.region == "unknown"
    current = decode_event("Probe", b'{"type":"Probe","name":"b","region":"eu"}', 2)
    assert current.region == "eu"
    with pytest.raises(ValueError, match="newer than this code knows"):
        upcast("Probe", 3, 2, {})
