"""Commands: what a user asks the registry to do, in the imperative.

The handlers (domain.registry.handlers) take them; those that carry ``metadata`` (who asks, and
the correlation) are what entrypoints send. ``RecordRegistration`` and ``RecordEvaluation`` are
what the handlers decide on once the artifact or the metrics are known.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from domain.registry.gate_policy import GateOutcome
from events.base import EventMetadata
from events.gates import GatePolicy
from events.registry import ArtifactMetadata


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every command."""

    reason: str | None = None


class RegisterModelVersion(Command, frozen=True, kw_only=True):
    """Import an artifact file as a new immutable version (``artifact_metadata`` overrides its
    sidecar)."""

    model_name: str
    model_version: str
    source: str
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    artifact_metadata: ArtifactMetadata | None = None
    metadata: EventMetadata


class RecordRegistration(Command, frozen=True, kw_only=True):
    """Add an immutable version whose artifact is already stored and hashed."""

    model_name: str
    model_version: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    metadata: ArtifactMetadata = msgspec.field(default_factory=ArtifactMetadata)
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class PromoteModelVersion(Command, frozen=True, kw_only=True):
    """Make a version prod, demoting the current prod.

    The gate policy is checked against ``gates`` (the model's finished gates of this candidate,
    looked up by the handler) at ``now`` (the handler's clock); ``force`` overrides a required
    gate and needs ``reason`` and the policy's force_role in ``role`` (the caller's key's role;
    None from the CLI); ``gate_id`` names the gate that caused the promotion (auto-promotion).
    With the policy's approvals_required above 1 it records a request instead.
    """

    model_name: str
    model_version: str
    force: bool = False
    gate_id: str | None = None
    # Set only by the canary controller (never read from a request): its PASS clears the gate.
    canary_id: str | None = None
    gates: tuple[GateOutcome, ...] = ()
    now: datetime | None = None
    role: str | None = None
    metadata: EventMetadata


class ApprovePromotion(Command, frozen=True, kw_only=True):
    """Approve a pending promotion request as a key other than the requester's (four eyes).

    ``gates`` and ``now`` are filled by the handler, as for a promotion: the gate clearance is
    checked again when the last approval promotes.
    """

    model_name: str
    model_version: str
    gates: tuple[GateOutcome, ...] = ()
    now: datetime | None = None
    metadata: EventMetadata


class DemoteModelVersion(Command, frozen=True, kw_only=True):
    """Take the prod version out of prod."""

    model_name: str
    model_version: str
    metadata: EventMetadata


class RollbackModel(Command, frozen=True, kw_only=True):
    """Restore the version that was prod before the current one."""

    model_name: str
    metadata: EventMetadata


class TagModelVersion(Command, frozen=True, kw_only=True):
    """Set tags on a version."""

    model_name: str
    model_version: str
    tags: dict[str, str]
    metadata: EventMetadata


class ArchiveModelVersion(Command, frozen=True, kw_only=True):
    """Retire a version so it can no longer be promoted."""

    model_name: str
    model_version: str
    metadata: EventMetadata


class SetGatePolicy(Command, frozen=True, kw_only=True):
    """Replace a model's gate policy."""

    model_name: str
    policy: GatePolicy
    metadata: EventMetadata


class RecordEvaluation(Command, frozen=True, kw_only=True):
    """Attach a batch job's metrics to the version it evaluated."""

    model_name: str
    model_version: str
    job_id: str
    dataset_id: str
    metrics: dict[str, Any]


class GetModel(msgspec.Struct, frozen=True, kw_only=True):
    """Read a model's current state, folded from its stream (for verbs that need its versions)."""

    model_name: str


RegistryCommand = (
    RecordRegistration
    | PromoteModelVersion
    | ApprovePromotion
    | DemoteModelVersion
    | RollbackModel
    | TagModelVersion
    | ArchiveModelVersion
    | RecordEvaluation
    | SetGatePolicy
)
