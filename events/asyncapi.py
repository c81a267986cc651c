"""An AsyncAPI 3 document of every event stream and payload, generated from the msgspec types.

Each message has a payload schema (msgspec.json.schema_components), the stream entry's other
fields as headers, its schema version, and an example built from the type and checked by
decoding it with the codec.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import inspect as mi

from events.base import Event
from events.codec import decode_event, encode_event, event_types
from events.online import OUTCOME_EXAMPLE, OUTCOMES_STREAM, PairedOutcome
from events.streams import CHECKPOINTS_STREAM, area_stream
from events.traffic import CAPTURED_STREAM, CapturedRow

REF = "#/components/schemas/{name}"
ENTRY_FIELDS = {
    "event_id": ("uuid", "The event's id, the consumers' dedupe key."),
    "type": (None, "The event type (the payload's class name)."),
    "schema_version": ("integer", "The payload's schema version; older ones are upcast."),
    "stream_id": (None, "The event-log stream (one aggregate), e.g. model-mnist_cnn."),
    "stream_version": ("integer", "The event's version within its stream."),
    "position": ("integer", "The global position in the log; the entry id is <position>-0."),
    "actor": (None, "Who caused it: an API key's name, an OS user or a worker."),
    "correlation_id": ("uuid", "The request or command it belongs to."),
    "causation_id": ("uuid-or-empty", "The event that caused it, empty if none."),
    "recorded_at": ("date-time", "When it was appended to the log."),
    "trace_context": (None, "The W3C traceparent of the request, empty if none."),
    "hash": (None, "The row's hash in the log's chain (hex): an anchor outside PostgreSQL."),
    "hash_scheme": ("integer", "How the hash was made: 2 SHA-256, 3 HMAC-SHA-256."),
}
# Messages of streams that carry work, not log events (no event type decodes them).
WORK_MESSAGES = {"CheckpointSigned", "RequestsCaptured", "OutcomesPaired"}
_KNOWN = {
    "model_name": "mnist_cnn",
    "dataset_id": "fashion_mnist_1000",
    "sha256": "0" * 64,
    "artifact_uri": "mnist_cnn/v1.0.0/model.pt",
    "job_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "gate_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
}


def _key(stream: str) -> str:
    """A channel or operation key (AsyncAPI keys allow letters, digits, _ and -)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", stream)


def _entry_headers() -> dict[str, Any]:
    props = {}
    for name, (kind, text) in ENTRY_FIELDS.items():
        schema: dict[str, Any] = {"type": "string", "description": text}
        if kind in ("uuid", "date-time"):
            schema["format"] = kind
        elif kind == "integer":
            schema["pattern"] = "^[0-9]+$"
        props[name] = schema
    return {
        "type": "object",
        "description": "The other fields of the Redis stream entry; the payload field is the message.",
        "properties": props,
        "required": [n for n in ENTRY_FIELDS if n not in ("trace_context", "hash", "hash_scheme")],
    }


def example_value(t: mi.Type, field: str = "") -> Any:
    """A plausible value of a type (names known to the platform get realistic values)."""
    if isinstance(t, mi.StructType):
        return {f.encode_name: example_value(f.type, f.name) for f in t.fields}
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return example_value(inner[0], field) if inner else None
    if isinstance(t, mi.StrType):
        if field in _KNOWN:
            return _KNOWN[field]
        if "version" in field:
            return "v1.0.0"
        return field or "text"
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 1)
        return max(low, 1) if t.le is None or t.le >= 1 else low
    if isinstance(t, mi.FloatType):
        return 0.5
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.EnumType):
        return next(iter(t.cls)).value
    if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return [example_value(t.item_type, field)]
    if isinstance(t, mi.TupleType):
        return [example_value(x, field) for x in t.item_types]
    if isinstance(t, mi.DictType):
        return {str(example_value(t.key_type, "key")): example_value(t.value_type, "value")}
    if isinstance(t, mi.DateTimeType):
        return datetime(2026, 11, 26, 12, 0, tzinfo=UTC).isoformat()
    if isinstance(t, mi.UUIDType):
        return str(uuid.UUID(int=1))
    return None


def example_payload(cls: type[Event]) -> dict[str, Any]:
    """An example payload of an event type, round-tripped through the codec."""
    data = example_value(mi.type_info(cls))
    event = msgspec.convert(data, cls)
    return msgspec.json.decode(encode_event(event))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every event stream."""
    types = event_types()
    _, schemas = msgspec.json.schema_components(list(types.values()), ref_template=REF)
    schemas["StreamEntry"] = _entry_headers()
    messages, by_stream = {}, {}
    for name, cls in sorted(types.items()):
        stream = area_stream(cls.area)
        by_stream.setdefault(stream, []).append(name)
        payload = example_payload(cls)
        decode_event(name, msgspec.json.encode(payload))  # the example must decode
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/StreamEntry"},
            "payload": {"$ref": REF.format(name=name)},
            "x-schema-version": cls.schema_version,
            "examples": [{"name": f"{name}-example", "payload": payload}],
        }
    channels, operations = {}, {}
    for stream, names in sorted(by_stream.items()):
        key = _key(stream)
        channels[key] = {
            "address": stream,
            "description": f"Redis stream {stream}: the log's {stream.split('.')[0]} events, "
            "relayed in position order with entry id <position>-0.",
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        operations[f"receive_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{n}"} for n in names],
        }
    _checkpoints(channels, operations, schemas, messages)
    _captured(channels, operations, schemas, messages)
    _outcomes(channels, operations, schemas, messages)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Inference and evaluation platform: event streams",
            "version": "1.0.0",
            "description": "Every change is an event in the PostgreSQL log, relayed to these "
            "Redis Streams. Consumer groups read them; entries are never edited.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "REDIS_URL (embedded under STATE_DIR by default)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


CHECKPOINT_ENTRY = {
    "type": "object",
    "required": ["size", "root", "note"],
    "properties": {
        "size": {"type": "integer", "minimum": 1, "description": "tree size (also the entry id)"},
        "root": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "root, hex"},
        "note": {"type": "string", "description": "the C2SP signed note, as GET /log/checkpoint"},
    },
}


CHECKPOINT_EXAMPLE = {
    "size": 100,
    "root": "691d2a7f8e1e7eee9dfcdccdcbbdb9ce45d9c30d5e8d369a3f242f5c81b0e72a",
    "note": "inference-platform/event-log\n100\naR0qf44efu6d/NzNy725zkXZww1XjTaVPyQvXIGw5yo=\n\n"
    "— inference-platform/event-log wC0SyJYM…\n",
}


def _checkpoints(channels: dict, operations: dict, schemas: dict, messages: dict) -> None:
    """The checkpoint announcements: not log events, but read by witnesses and monitors."""
    key = _key(CHECKPOINTS_STREAM)
    schemas["CheckpointSigned"] = CHECKPOINT_ENTRY
    messages["CheckpointSigned"] = {
        "name": "CheckpointSigned",
        "title": "CheckpointSigned",
        "summary": "The log signed a checkpoint of its Merkle tree (docs/audit.md).",
        "contentType": "application/json",
        "payload": {"$ref": REF.format(name="CheckpointSigned")},
        "examples": [{"name": "CheckpointSigned-example", "payload": CHECKPOINT_EXAMPLE}],
    }
    channels[key] = {
        "address": CHECKPOINTS_STREAM,
        "description": f"Redis stream {CHECKPOINTS_STREAM}: each signed checkpoint once, entry id "
        "<size>-0; the checkpoints themselves are kept in PostgreSQL.",
        "messages": {"CheckpointSigned": {"$ref": "#/components/messages/CheckpointSigned"}},
    }
    operations[f"receive_{key}"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/CheckpointSigned"}],
    }


CAPTURED_EXAMPLE = {
    "request_id": "3f2c9a1e0b7d4c5e8f6a1b2c3d4e5f60",
    "model_name": "mnist_cnn",
    "model_version": "v1.0.0",
    "captured_at": "2026-12-05T20:00:00Z",
    "input": "<784 bytes>",
    "input_dtype": "uint8",
    "prediction": 7,
    "scores": [0.1] * 10,
    "latency_ms": 3.2,
    "retention_days": 30,
    "trace_id": None,
    "routed": False,
}


def _captured(channels: dict, operations: dict, schemas: dict, messages: dict) -> None:
    """Captured requests: work messages of the traffic-recorder group, not log events."""
    key = _key(CAPTURED_STREAM)
    _, found = msgspec.json.schema_components([CapturedRow], ref_template=REF)
    schemas.update(found)
    messages["RequestsCaptured"] = {
        "name": "RequestsCaptured",
        "title": "RequestsCaptured",
        "summary": "Sampled requests of one API process (docs/traffic.md): field rows, a "
        "msgpack array of CapturedRow (input: the [28,28] tensor's raw bytes).",
        "contentType": "application/msgpack",
        "payload": {"type": "array", "items": {"$ref": REF.format(name="CapturedRow")}},
        "examples": [{"name": "RequestsCaptured-example", "payload": [CAPTURED_EXAMPLE]}],
    }
    channels[key] = {
        "address": CAPTURED_STREAM,
        "description": f"Redis stream {CAPTURED_STREAM}: batches of captured requests, trimmed "
        "by MAXLEN; the traffic-recorder group stores them in PostgreSQL.",
        "messages": {"RequestsCaptured": {"$ref": "#/components/messages/RequestsCaptured"}},
    }
    operations[f"receive_{key}"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/RequestsCaptured"}],
    }


def _outcomes(channels: dict, operations: dict, schemas: dict, messages: dict) -> None:
    """Paired outcomes: work messages of the shadow-evaluation group (docs/online.md)."""
    key = _key(OUTCOMES_STREAM)
    _, found = msgspec.json.schema_components([PairedOutcome], ref_template=REF)
    schemas.update(found)
    ref = {"$ref": REF.format(name="PairedOutcome")}
    messages["OutcomesPaired"] = {
        "name": "OutcomesPaired",
        "title": "OutcomesPaired",
        "summary": "Both versions' answers to mirrored requests of one API process: field rows, "
        "a msgpack array of PairedOutcome (a failed side's prediction is null).",
        "contentType": "application/msgpack",
        "payload": {"type": "array", "items": ref},
        "examples": [{"name": "OutcomesPaired-example", "payload": [OUTCOME_EXAMPLE]}],
    }
    channels[key] = {
        "address": OUTCOMES_STREAM,
        "description": f"Redis stream {OUTCOMES_STREAM}: batches of paired outcomes, trimmed by "
        "MAXLEN; the shadow-evaluation group stores them in PostgreSQL.",
        "messages": {"OutcomesPaired": {"$ref": "#/components/messages/OutcomesPaired"}},
    }
    operations[f"receive_{key}"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/OutcomesPaired"}],
    }


def document_json() -> bytes:
    """The document as indented JSON bytes."""
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"
