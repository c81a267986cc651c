"""Events of regression gates (area ``gates``), one ``gate-<id>`` stream per gate."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from events.base import Event
from events.upcasting import register_upcaster

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
OnInconclusive = Literal["block", "allow"]
# How a verdict was reached: schema-1 verdicts compared point estimates with the thresholds
# (and a p95 ratio with a bootstrap); they keep that meaning in the log.
POINT_ESTIMATE, NON_INFERIORITY = "point-estimate", "non-inferiority"


class GateThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """The non-inferiority margins a candidate must be shown to be within, and the error rate."""

    # Fractions: 0.01 is one percentage point of accuracy; 0.10 is a 10% rise of the median
    # per-round latency ratio (ms per batch, candidate/baseline, timed alternately).
    max_accuracy_drop: float = 0.01
    max_latency_increase: float = 0.10
    # One-sided error rate: a candidate exactly at a margin passes with probability <= alpha;
    # intervals are at confidence 1 - 2 * alpha (0.025: the usual 95% interval).
    alpha: float = 0.025
    # Fewer images than this cannot PASS (a clear FAIL still fails): the gate is INCONCLUSIVE.
    min_images: int = 200


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
    # What an INCONCLUSIVE gate does to a promotion: block it (naming the evidence still
    # needed) or clear it like a PASS.
    on_inconclusive: OnInconclusive = "block"


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
    # INCONCLUSIVE: how many more images (accuracy) or rounds (latency) would likely decide it;
    # None when decided, or when no affordable amount would (the detail says so).
    needed: int | None = None


class AccuracyFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The paired 2x2 table behind the accuracy checks."""

    images: int
    baseline_correct: int
    candidate_correct: int
    # Discordant pairs: the only images McNemar's test looks at.
    only_baseline_correct: int
    only_candidate_correct: int


class LatencyFigures(msgspec.Struct, frozen=True, kw_only=True):
    """The paired latency run, in ms per batch of ``batch_size``: one pair of timings a round.

    ``statistic`` says what ``ratio`` and its interval are: ``median_ratio`` (the median of the
    per-round ratios candidate/baseline, sign-test interval) or, in schema-1 verdicts,
    ``p95_ratio`` (p95 of each version's batch times, bootstrap interval).
    """

    batch_size: int
    batches: int
    baseline_p95_ms: float
    candidate_p95_ms: float
    ratio: float
    ci_low: float
    ci_high: float
    order: str = "ABBA"
    statistic: str = "p95_ratio"
    unit: str = "ms per batch"
    baseline_median_ms: float | None = None
    candidate_median_ms: float | None = None


class GateRequested(Event, frozen=True, kw_only=True):
    """A candidate version is to be compared against a baseline on one dataset."""

    area: ClassVar[str] = "gates"
    schema_version: ClassVar[int] = 2  # 2: thresholds are non-inferiority margins
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
    """The verdict: FAIL when a check fails, else INCONCLUSIVE when one is, else PASS."""

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
    # Absent in verdicts recorded before non-inferiority: those compared point estimates.
    rule: str = POINT_ESTIMATE
    # INCONCLUSIVE: the evidence still needed, in words (more images, more latency rounds).
    needed: str | None = None


class GateErrored(Event, frozen=True, kw_only=True):
    """The gate could not be evaluated; ``reason`` says why."""

    area: ClassVar[str] = "gates"
    gate_id: str
    reason: str


GateEvent = GateRequested | GateEvaluationsRequested | GateEvaluated | GateErrored


def upcast_thresholds(old: dict[str, Any]) -> dict[str, Any]:
    """Schema-1 thresholds as margins: the same interval, read one-sided.

    Their ``alpha`` was two-sided (a 1 - alpha interval): alpha / 2 one-sided keeps it.
    ``require_not_significant`` is gone (non-inferiority decides on the interval against the
    margin, whatever it said); the p95 latency rise becomes the paired-ratio margin.
    """
    t = dict(old)
    t.pop("require_not_significant", None)
    if "max_p95_latency_increase" in t:
        t["max_latency_increase"] = t.pop("max_p95_latency_increase")
    if "alpha" in t:
        t["alpha"] = t["alpha"] / 2
    return t


def _upcast_requested(data: dict[str, Any]) -> dict[str, Any]:
    if isinstance(data.get("thresholds"), dict):
        data["thresholds"] = upcast_thresholds(data["thresholds"])
    return data


def upcast_policy(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 GatePolicySet: its thresholds upcast (INCONCLUSIVE blocks by default)."""
    policy = data.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("thresholds"), dict):
        data["policy"] = {**policy, "thresholds": upcast_thresholds(policy["thresholds"])}
    return data


register_upcaster("GateRequested", 1, _upcast_requested)
register_upcaster("GatePolicySet", 1, upcast_policy)
