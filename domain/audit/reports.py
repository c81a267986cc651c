"""Audit read models, pure: the anchor line, findings, trail entries, point-in-time state, recipes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from domain.errors import InvalidInput
from domain.registry.decisions import fold
from events.base import RecordedEvent
from events.codec import encode_event, event_types

# Payload keys that say which model and version an event is about, in order of preference.
_VERSION_KEYS = ("model_version", "to_version", "candidate_version", "version")


class Anchor(msgspec.Struct, frozen=True):
    """The head of the log at one moment: kept outside PostgreSQL to reveal a deleted tail."""

    position: int
    hash: str
    time: datetime
    # The first position the log is HMAC'd from (its AuditKeyAdopted marker), once a key is used.
    hmac_from: int | None = None

    def line(self) -> str:
        """One token, safe to paste into a shell: ``position=N,hash=HEX,time=ISO[,hmac_from=P]``."""
        pin = f",hmac_from={self.hmac_from}" if self.hmac_from is not None else ""
        return f"position={self.position},hash={self.hash},time={self.time.isoformat()}{pin}"

    @classmethod
    def parse(cls, line: str) -> Anchor:
        """Read a line printed by ``just anchor``; InvalidInput says what is wrong."""
        parts = dict(p.partition("=")[::2] for p in line.strip().split(",") if p)
        missing = [k for k in ("position", "hash", "time") if k not in parts]
        if missing:
            raise InvalidInput(
                f"anchor {line!r} lacks {', '.join(missing)}; "
                "expected position=N,hash=HEX,time=ISO as printed by `just anchor`"
            )
        try:
            position = int(parts["position"])
            bytes.fromhex(parts["hash"])
            time = parse_time(parts["time"], "anchor time")
            pin = int(parts["hmac_from"]) if "hmac_from" in parts else None
        except ValueError as exc:
            raise InvalidInput(f"anchor {line!r} is malformed: {exc}") from None
        if position < 1 or len(parts["hash"]) != 64:
            raise InvalidInput(f"anchor {line!r}: position must be >= 1 and hash 64 hex digits")
        if pin is not None and not 1 <= pin <= position:
            raise InvalidInput(f"anchor {line!r}: hmac_from must be between 1 and the position")
        return cls(position, parts["hash"].lower(), time, pin)


class Finding(msgspec.Struct, frozen=True):
    """One discrepancy: which check found it, at which log position, and what it is."""

    check: str
    position: int | None
    problem: str


class AuditReport(msgspec.Struct, kw_only=True):
    """The outcome of ``just audit``."""

    events: int = 0
    last_position: int = 0
    checks: dict[str, str] = msgspec.field(default_factory=dict)
    findings: list[Finding] = msgspec.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no check found anything."""
        return not self.findings

    @property
    def first_bad_position(self) -> int | None:
        """The lowest position a finding names; a projection finding only names the last event
        of its stream (the projection is wrong as of then), so the exact checks come first."""
        named = [f for f in self.findings if f.position is not None]
        exact = [f.position for f in named if f.check != "projections"]
        positions = exact or [f.position for f in named]
        return min(positions) if positions else None  # type: ignore[type-var]


class TrailEntry(msgspec.Struct, frozen=True):
    """One event of the audit trail, as `just replay` and GET /events show it."""

    position: int
    recorded_at: datetime
    actor: str
    event_type: str
    stream_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    trace_context: str | None
    event_id: uuid.UUID
    schema_version: int
    model_name: str | None
    model_version: str | None
    reason: str | None
    payload: msgspec.Raw  # the stored JSON, passed through unparsed


class TrailFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a replay shows."""

    after: int = 0
    since: datetime | None = None
    model: str | None = None
    event_type: str | None = None
    actor: str | None = None

    def check(self) -> None:
        """InvalidInput naming a bad field."""
        if self.after < 0:
            raise InvalidInput(f"position must be >= 0, got {self.after}")
        known = event_types()
        if self.event_type is not None and self.event_type not in known:
            raise InvalidInput(
                f"unknown event type {self.event_type!r}; known: {', '.join(sorted(known))}"
            )


class _Shown(msgspec.Struct):
    """The payload fields a trail line shows; every other field is skipped unparsed."""

    model_name: Any = None
    model_version: Any = None
    to_version: Any = None
    candidate_version: Any = None
    version: Any = None
    reason: Any = None
    why: Any = None  # what a worker's decision gives instead (CanaryAborted, ShadowStopped)
    job_id: Any = None


_shown = msgspec.json.Decoder(_Shown)


def trail_entry(
    r: RecordedEvent, schema_version: int, job_models: dict[str, tuple[str, str]]
) -> TrailEntry:
    """The trail view of a recorded event; job events take their model from ``job_models``."""
    m = r.metadata
    return trail_from_parts(
        (
            r.position,
            r.recorded_at,
            m.actor,
            type(r.event).__name__,
            r.stream_id,
            m.correlation_id,
            m.causation_id,
            m.trace_context,
            r.event_id,
            schema_version,
        ),
        encode_event(r.event),
        job_models,
    )


def trail_from_parts(
    envelope: tuple, payload: bytes, job_models: dict[str, tuple[str, str]]
) -> TrailEntry:
    """A trail entry from the envelope columns (in TrailEntry's order) and the payload JSON."""
    shown = _shown.decode(payload)
    name = shown.model_name
    version = next((getattr(shown, k) for k in _VERSION_KEYS if getattr(shown, k)), None)
    if name is None and shown.job_id is not None and shown.job_id in job_models:
        name, version = job_models[shown.job_id]
    return TrailEntry(*envelope, name, version, shown.reason or shown.why, msgspec.Raw(payload))


def parse_time(raw: str, what: str = "time") -> datetime:
    """An ISO 8601 time (a date alone means its midnight); naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {raw!r} is not an ISO 8601 time (e.g. 2026-11-26T14:05:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class VersionAt(msgspec.Struct, frozen=True, kw_only=True):
    """A version as it stood at a moment."""

    model_version: str
    status: str
    sha256: str
    registered_at: datetime
    registered_by: str


class ModelAt(msgspec.Struct, frozen=True, kw_only=True):
    """A model at a moment, folded from its events up to then."""

    model_name: str
    at: datetime
    prod_version: str | None
    prod_since: datetime | None
    versions: list[VersionAt]
    as_of_position: int | None


def model_at(model_name: str, at: datetime, history: list[RecordedEvent]) -> ModelAt:
    """Which versions existed and which was prod at ``at`` (events recorded after it ignored)."""
    upto = [r for r in history if r.recorded_at <= at]
    state = fold(model_name, upto)
    versions = [
        VersionAt(
            model_version=v.model_version,
            status=v.status,
            sha256=v.sha256,
            registered_at=v.created_at,
            registered_by=v.registered_by,
        )
        for v in state.versions.values()
    ]
    return ModelAt(
        model_name=model_name,
        at=at,
        prod_version=state.prod,
        prod_since=state.prod_since if state.prod else None,
        versions=versions,
        as_of_position=upto[-1].position if upto else None,
    )


class TrainingRecipe(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `just train` needs to make the same weights again."""

    architecture: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    threads: int
    precision: str
    train_samples: int
    device: str = "cpu"  # recorded since training could use a GPU


RECIPE_KEYS = ("epochs", "batch_size", "lr", "seed", "threads", "precision", "train_samples")


def recipe_from_metadata(metadata: dict[str, Any], what: str) -> TrainingRecipe:
    """The recipe recorded in a registration's metadata; InvalidInput names what is missing."""
    training = metadata.get("training") or {}
    missing = [k for k in RECIPE_KEYS if k not in training]
    missing += [k for k in ("architecture", "dataset") if not metadata.get(k)]
    if missing:
        raise InvalidInput(
            f"{what} records no full training recipe (missing: {', '.join(missing)}); "
            "only versions made by `just train` can be reproduced"
        )
    try:
        return msgspec.convert(
            {k: training[k] for k in (*RECIPE_KEYS, "device") if k in training}
            | {"architecture": metadata["architecture"], "dataset": metadata["dataset"]},
            TrainingRecipe,
        )
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{what} has a malformed training recipe: {exc}") from None


class AuditPort(Protocol):
    """What the audit entrypoints (HTTP, CLI) use; storage.audit.service implements it."""

    async def page(self, f: TrailFilter, limit: int) -> tuple[list[TrailEntry], int | None]:
        """One page of the trail and the position to ask after next (None at the end)."""
        ...

    async def model_at(self, model_name: str, at: datetime) -> ModelAt:
        """A model's versions and prod at a moment."""
        ...


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    """GET /events: one page of the trail, in position order."""

    events: list[TrailEntry]
    next_after: int | None
