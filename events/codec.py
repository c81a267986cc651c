"""Encode and decode events; the type name on the wire is the class name."""

from __future__ import annotations

from typing import Any

import msgspec

from events.audit import AuditKeyAdopted
from events.base import Event, EventMetadata, RecordedEvent
from events.dead_letters import DeadLetterEvent
from events.gates import GateEvent
from events.jobs import EvaluationRecorded, JobEvent
from events.keys import KeyEvent
from events.online import OnlineEvent
from events.registry import RegistryEvent
from events.traffic import TrafficEvent

_EVENT_TYPES: dict[str, type[Event]] = {}
_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


def register_event_types(*types: type[Event]) -> None:
    """Make event classes decodable by their type name."""
    for t in types:
        _EVENT_TYPES[t.__name__] = t
        _decoders.pop(t.__name__, None)  # a new version of a type replaces its decoder


register_event_types(*RegistryEvent.__args__)  # type: ignore[attr-defined]
register_event_types(*JobEvent.__args__, EvaluationRecorded)  # type: ignore[attr-defined]
register_event_types(*GateEvent.__args__)  # type: ignore[attr-defined]
register_event_types(*KeyEvent.__args__)  # type: ignore[attr-defined]
register_event_types(*DeadLetterEvent.__args__)  # type: ignore[attr-defined]
register_event_types(AuditKeyAdopted)
register_event_types(*TrafficEvent.__args__)  # type: ignore[attr-defined]
register_event_types(*OnlineEvent.__args__)  # type: ignore[attr-defined]

_encoder = msgspec.json.Encoder()


def event_type_name(event: Event) -> str:
    """The wire name of an event's type."""
    return type(event).__name__


def encode_event(event: Event) -> bytes:
    """Serialise an event to canonical JSON bytes (the hashed payload)."""
    return _encoder.encode(event)


def decode_event(type_name: str, payload: bytes | str, schema_version: int | None = None) -> Event:
    """Parse payload bytes into the class named ``type_name``, upcasting an older schema version."""
    decoder = _decoders.get(type_name)
    if decoder is None:
        try:
            cls = _EVENT_TYPES[type_name]
        except KeyError:
            raise ValueError(f"unknown event type {type_name!r}") from None
        decoder = _decoders[type_name] = msgspec.json.Decoder(cls)
    current = _EVENT_TYPES[type_name].schema_version
    if schema_version is None or schema_version == current:
        return decoder.decode(payload)
    from events.upcasting import upcast

    data = upcast(type_name, schema_version, current, msgspec.json.decode(payload))
    return msgspec.convert(data, _EVENT_TYPES[type_name])


def event_types() -> dict[str, type[Event]]:
    """Every decodable event class by its wire name."""
    return dict(_EVENT_TYPES)


def schema_version_of(type_name: str) -> int | None:
    """The schema version this code writes for an event type, None if the type is unknown."""
    cls = _EVENT_TYPES.get(type_name)
    return cls.schema_version if cls is not None else None


def area_of(type_name: str) -> str:
    """The area (and so the Redis stream) an event type belongs to."""
    try:
        return _EVENT_TYPES[type_name].area
    except KeyError:
        raise ValueError(f"unknown event type {type_name!r}") from None


def recorded_from_row(row: Any) -> RecordedEvent:
    """An event_log row (any object with its columns as attributes) as a decoded RecordedEvent."""
    return RecordedEvent(
        position=row.position,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        event_id=row.event_id,
        recorded_at=row.recorded_at,
        metadata=EventMetadata(
            actor=row.actor,
            correlation_id=row.correlation_id,
            causation_id=row.causation_id,
            trace_context=row.trace_context,
        ),
        event=decode_event(row.event_type, row.payload, row.schema_version),
    )
