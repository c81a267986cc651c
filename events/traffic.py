"""Events of traffic capture (area ``traffic``): a model's capture policy and frozen datasets.

A model's capture policy is the stream ``capture-<model>``; a dataset frozen from captured
requests is the stream ``traffic-dataset-<name>`` (its id is ``traffic:<name>``). Captured
requests and their feedback are rows (captured_requests), not events: they are high volume.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec

from events.base import Event

CAPTURE_STREAM_PREFIX = "capture-"
TRAFFIC_DATASET_STREAM_PREFIX = "traffic-dataset-"
CAPTURED_STREAM = "traffic.captured"  # work messages (batches of captured requests), not events
TRAFFIC_DATASET_PREFIX = "traffic:"  # dataset ids of frozen traffic: traffic:<name>


def capture_stream_id(model_name: str) -> str:
    """The event-log stream id of one model's capture policy."""
    return f"{CAPTURE_STREAM_PREFIX}{model_name}"


def traffic_dataset_stream_id(name: str) -> str:
    """The event-log stream id of one frozen traffic dataset (``traffic:<name>``)."""
    return f"{TRAFFIC_DATASET_STREAM_PREFIX}{name}"


class CapturedRow(msgspec.Struct, frozen=True, kw_only=True):
    """One captured request in a ``traffic.captured`` entry (a work message, not an event); the
    input is the [28,28] tensor's raw bytes."""

    request_id: str
    model_name: str
    model_version: str
    captured_at: datetime
    input: bytes
    input_dtype: str  # "uint8" (0..255) or "float32" ([0, 1]), shape [28, 28]
    prediction: int
    scores: list[float]
    latency_ms: float
    retention_days: int
    trace_id: str | None = None
    routed: bool = False


class CapturePolicySet(Event, frozen=True, kw_only=True):
    """Sample ``fraction`` of a model's answered requests, at most ``max_per_s`` per second per
    API process, kept ``retention_days`` days; fraction 0 stops capture."""

    area: ClassVar[str] = "traffic"
    model_name: str
    fraction: float
    max_per_s: float
    retention_days: int
    reason: str | None = None


class TrafficDatasetFrozen(Event, frozen=True, kw_only=True):
    """Captured requests of a model frozen into the dataset ``dataset_id`` (``traffic:<name>``):
    the manifest (request ids in dataset order) and the SHA-256 of its content (ids, inputs,
    labels), so the images a job evaluates can be checked against what was frozen."""

    area: ClassVar[str] = "traffic"
    dataset_id: str
    model_name: str
    since: datetime | None = None
    until: datetime | None = None
    labelled_only: bool = False
    request_ids: list[str]
    labelled: int  # requests with a label: the images a batch job or a gate evaluates
    digest: str
    reason: str | None = None


TrafficEvent = CapturePolicySet | TrafficDatasetFrozen
