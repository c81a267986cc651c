"""Events of regression gates (area ``gates``), one ``gate-<id>`` stream per gate."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from events.base import Event

PASS, FAIL = "PASS", "FAIL"
Verdict = Literal["PASS", "FAIL"]


class GateThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """What a candidate may lose against its baseline before a gate fails it."""

    # Fractions: 0.01 is one percentage point of accuracy; 0.10 is a 10% rise of p95 latency.
    max_accuracy_drop: float = 0.01
    max_p95_latency_increase: float = 0.10
    # Also fail when the accuracy drop is significant at ``alpha`` (McNemar's exact test).
    require_not_significant: bool = False
    alpha: float = 0.05


class GatePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A model's gate policy: thresholds and when gates run and are required."""

    thresholds: GateThresholds = msgspec.field(default_factory=GateThresholds)
    require_gate: bool = False
    max_gate_age_s: int = 86400
    auto_gate: bool = True
    auto_promote: bool = False
    # Which gates count: on this dataset (None: the model's reference dataset, the one its
    # versions were registered as trained on) and on at least this many images.
    gate_dataset: str | None = None
    min_gate_images: int = 0
    # The least role that may force a promotion past this policy.
    force_role: str = "admin"
    # Four eyes: with 2, a promotion is a request until a second key approves it.
    approvals_required: int = 1
    max_request_age_s: int = 86400


class GateCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One check of a verdict: the two figures, their difference and the rule applied."""

    name: str
    baseline: float
    candidate: float
    delta: float
    threshold: float
    verdict: Verdict
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    detail: str = ""


class AccuracyFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The paired 2x2 table behind the accuracy checks."""

    images: int
    baseline_correct: int
    candidate_correct: int
    # Discordant pairs: the only images McNemar's test looks at.
    only_baseline_correct: int
    only_candidate_correct: int


class LatencyFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The paired latency run: per-batch p95 of each version and their ratio."""

    batch_size: int
    batches: int
    baseline_p95_ms: float
    candidate_p95_ms: float
    ratio: float
    ci_low: float
    ci_high: float
    order: str = "ABBA"


class GateRequested(Event, frozen=True, kw_only=True):
    """A candidate version is to be compared against a baseline on one dataset."""

    area: ClassVar[str] = "gates"
    gate_id: str
    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str
    thresholds: GateThresholds = msgspec.field(default_factory=GateThresholds)
    # An automatic gate was started by the evaluation job ``cause``; a manual one by a user.
    auto: bool = False
    cause: str | None = None
    reason: str | None = None
    # Said when the gate was asked for: its dataset or size will not clear a promotion.
    warning: str | None = None


class GateEvaluationsRequested(Event, frozen=True, kw_only=True):
    """The batch jobs whose predictions the gate compares (``submitted``: started by the gate)."""

    area: ClassVar[str] = "gates"
    gate_id: str
    candidate_job_id: str
    baseline_job_id: str
    submitted: list[str] = msgspec.field(default_factory=list)


class GateEvaluated(Event, frozen=True, kw_only=True):
    """The verdict: PASS only when every check passes."""

    area: ClassVar[str] = "gates"
    gate_id: str
    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str
    verdict: Verdict
    checks: list[GateCheck]
    accuracy: AccuracyFigures
    latency: LatencyFigures | None = None


class GateErrored(Event, frozen=True, kw_only=True):
    """The gate could not be evaluated; ``reason`` says why."""

    area: ClassVar[str] = "gates"
    gate_id: str
    reason: str


GateEvent = GateRequested | GateEvaluationsRequested | GateEvaluated | GateErrored
