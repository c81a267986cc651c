"""The wire contract: typed, versioned msgspec events, their codec and stream names."""

from events.base import Event, EventMetadata, RecordedEvent
from events.codec import decode_event, encode_event, event_type_name
from events.registry import (
    ArtifactMetadata,
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
    RegistryEvent,
)
from events.streams import REGISTRY_STREAM, area_stream, stream_for_event

__all__ = [
    "REGISTRY_STREAM",
    "ArtifactMetadata",
    "Event",
    "EventMetadata",
    "ModelVersionArchived",
    "ModelVersionDemoted",
    "ModelVersionPromoted",
    "ModelVersionRegistered",
    "ModelVersionRolledBack",
    "ModelVersionTagged",
    "RecordedEvent",
    "RegistryEvent",
    "area_stream",
    "decode_event",
    "encode_event",
    "event_type_name",
    "stream_for_event",
]
