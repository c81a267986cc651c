"""Events of the model registry: one stream per registered model."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

from events.base import Event
from events.gates import GatePolicy


class ArtifactMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a model artifact is and how it was made; stored beside model.pt and in the log."""

    architecture: str | None = None
    input_shape: tuple[int, ...] = (1, 28, 28)
    input_dtype: str = "float32"
    normalization: dict[str, float] = msgspec.field(default_factory=dict)
    num_classes: int | None = None
    class_names: list[str] = msgspec.field(default_factory=list)
    dataset: str | None = None
    training: dict[str, Any] = msgspec.field(default_factory=dict)
    test_metrics: dict[str, float] = msgspec.field(default_factory=dict)
    git_sha: str | None = None
    created_with: str | None = None


class ModelVersionRegistered(Event, frozen=True, kw_only=True):
    """A new, immutable model version entered the registry in staging."""

    model_name: str
    model_version: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    metadata: ArtifactMetadata = msgspec.field(default_factory=ArtifactMetadata)
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    reason: str | None = None


class ModelVersionPromoted(Event, frozen=True, kw_only=True):
    """A version became prod; the previous prod, if any, was demoted with it."""

    model_name: str
    model_version: str
    previous_prod: str | None = None
    reason: str | None = None
    # A promotion forced past the gate policy says so, and why.
    forced: bool = False
    force_reason: str | None = None
    # The gate whose PASS allowed (or, with auto-promote, caused) this promotion.
    gate_id: str | None = None
    # The canary whose every step passed on live traffic (it satisfies require_gate).
    canary_id: str | None = None
    # Four eyes: who requested the promotion and who approved it (empty without a request).
    requested_by: str | None = None
    approved_by: list[str] = msgspec.field(default_factory=list)


class PromotionRequested(Event, frozen=True, kw_only=True):
    """A promotion waits for approvals (the policy's approvals_required); the requester is the
    actor, and the gate clearance is checked again when the last approval comes."""

    model_name: str
    model_version: str
    request_id: str
    approvals_required: int
    expires_at: datetime
    reason: str | None = None
    forced: bool = False
    gate_id: str | None = None
    # A canary that passed every step, and the prod it was compared against: with four eyes
    # its promotion waits for approvals like any other, and only while that prod still holds.
    canary_id: str | None = None
    canary_prod: str | None = None


class PromotionApproved(Event, frozen=True, kw_only=True):
    """A key other than the requester's approved a pending promotion request."""

    model_name: str
    model_version: str
    request_id: str
    requested_by: str
    reason: str | None = None


class ModelVersionDemoted(Event, frozen=True, kw_only=True):
    """The prod version was taken out of prod, leaving the model without one."""

    model_name: str
    model_version: str
    reason: str | None = None


class ModelVersionRolledBack(Event, frozen=True, kw_only=True):
    """Prod went back from one version to the one that was prod before it."""

    model_name: str
    from_version: str
    to_version: str
    reason: str | None = None


class ModelVersionTagged(Event, frozen=True, kw_only=True):
    """Tags were set on a version (merged; an empty value removes a tag)."""

    model_name: str
    model_version: str
    tags: dict[str, str]
    reason: str | None = None


class ModelVersionArchived(Event, frozen=True, kw_only=True):
    """A version was retired: it can no longer be promoted."""

    model_name: str
    model_version: str
    reason: str | None = None


class GatePolicySet(Event, frozen=True, kw_only=True):
    """A model's gate policy was replaced (thresholds, required/automatic gates)."""

    schema_version: ClassVar[int] = 2  # 2: non-inferiority thresholds (events.gates upcasts 1)
    model_name: str
    policy: GatePolicy = msgspec.field(default_factory=GatePolicy)
    reason: str | None = None


RegistryEvent = (
    ModelVersionRegistered
    | ModelVersionPromoted
    | ModelVersionDemoted
    | ModelVersionRolledBack
    | ModelVersionTagged
    | ModelVersionArchived
    | GatePolicySet
    | PromotionRequested
    | PromotionApproved
)
