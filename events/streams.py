"""Stream naming: event log streams (per aggregate) and Redis Streams (per area)."""

from __future__ import annotations

from events.base import Event

REGISTRY_STREAM = "registry.events"
JOBS_STREAM = "jobs.events"
EVAL_STREAM = "eval.events"
GATES_STREAM = "gates.events"
# Work messages (shards) are not events: they live only in Redis and are re-planned from
# PostgreSQL if Redis loses them.
SHARDS_STREAM = "jobs.shards"
# Signed checkpoints of the log's Merkle tree, entry id <tree size>-0 (docs/audit.md).
CHECKPOINTS_STREAM = "audit.checkpoints"


def dead_letter_stream(stream: str) -> str:
    """Where entries that failed too often go, with their reason."""
    return f"{stream}.dlq"


# A Redis hash: "<group>|<stream>" -> entries that group moved to the stream's dead letters.
DEAD_LETTERS_KEY = "platform:dead-lettered"


def area_stream(area: str) -> str:
    """The Redis stream that carries an area's events, e.g. ``registry.events``."""
    return f"{area}.events"


def stream_for_event(event: Event) -> str:
    """The Redis stream an event is relayed to."""
    return area_stream(event.area)


def model_stream_id(model_name: str) -> str:
    """The event-log stream id of one registered model."""
    return f"model-{model_name}"


def job_stream_id(job_id: str) -> str:
    """The event-log stream id of one batch job."""
    return f"job-{job_id}"


MODEL_STREAM_PREFIX = "model-"
JOB_STREAM_PREFIX = "job-"


GATE_STREAM_PREFIX = "gate-"


def gate_stream_id(gate_id: str) -> str:
    """The event-log stream id of one regression gate."""
    return f"{GATE_STREAM_PREFIX}{gate_id}"
