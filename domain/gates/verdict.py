"""A gate's verdict: non-inferiority checks from paired statistics, and the event that says it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from domain.errors import InvalidInput
from domain.gates.commands import EvaluateGate
from domain.gates.noninferiority import (
    PairedRatio,
    accuracy_outcome,
    images_to_decide,
    latency_outcome,
    paired_ratio,
    rounds_to_decide,
)
from domain.gates.stats import PairedAccuracy, paired_accuracy
from events.base import Event
from events.gates import (
    FAIL,
    INCONCLUSIVE,
    NON_INFERIORITY,
    PASS,
    AccuracyFigures,
    GateCheck,
    GateErrored,
    GateEvaluated,
    GateThresholds,
    LatencyFigures,
    Verdict,
)

if TYPE_CHECKING:
    from domain.gates.state import GateState


def accuracy_check(t: GateThresholds, acc: PairedAccuracy) -> GateCheck:
    """Non-inferiority of accuracy; ``acc``'s interval must be at confidence 1 - 2 alpha."""
    verdict = accuracy_outcome(acc, t.max_accuracy_drop)
    needed, why = None, ""
    if verdict == PASS and acc.images < t.min_images:
        verdict = INCONCLUSIVE
        needed = t.min_images - acc.images
        why = f"; {acc.images:,} images, fewer than the policy's min_images {t.min_images:,}"
    elif verdict == INCONCLUSIVE:
        needed, total = images_to_decide(acc, t.max_accuracy_drop, t.alpha)
        if needed is None:
            why = (
                f"; it cannot be decided cheaply: the difference {acc.delta * 100:+.2f} pts is "
                f"too close to the margin"
                + (f" (about {total:,} images would be needed)" if total else "")
            )
        else:
            needed = max(needed, t.min_images - acc.images)
            why = f"; about {needed:,} more labelled images would likely decide it"
    interval = f"{(1 - 2 * t.alpha) * 100:g}%"
    return GateCheck(
        name="accuracy",
        baseline=acc.baseline_accuracy,
        candidate=acc.candidate_accuracy,
        delta=acc.delta,
        threshold=-t.max_accuracy_drop,
        verdict=verdict,  # type: ignore[arg-type]
        p_value=acc.p_value,
        ci_low=acc.ci_low,
        ci_high=acc.ci_high,
        needed=needed,
        detail=(
            f"non-inferior within {t.max_accuracy_drop * 100:g} pts: PASS when the {interval} "
            f"interval's lower end is above -{t.max_accuracy_drop * 100:g} pts, FAIL when its upper "
            f"end is below; candidate alone right on {acc.only_candidate_correct}, baseline alone "
            f"right on {acc.only_baseline_correct} of {acc.images} images{why}"
        ),
    )


def latency_check(t: GateThresholds, lat: PairedRatio, batch_size: int) -> GateCheck:
    """Non-inferiority of the median per-round latency ratio against 1 + threshold."""
    verdict = latency_outcome(lat, t.max_latency_increase)
    needed, why = None, ""
    if verdict == INCONCLUSIVE:
        total = rounds_to_decide(lat, t.max_latency_increase, t.alpha)
        if total is None:
            why = "; it cannot be decided cheaply: the ratio is too close to the margin"
        else:
            needed = total - lat.rounds
            why = f"; about {total} rounds (GATE_LATENCY_ROUNDS) would likely decide it"
    return GateCheck(
        name="latency",
        baseline=lat.baseline_median_ms,
        candidate=lat.candidate_median_ms,
        delta=lat.ratio - 1,
        threshold=t.max_latency_increase,
        verdict=verdict,  # type: ignore[arg-type]
        ci_low=lat.ci_low - 1,
        ci_high=lat.ci_high - 1,
        needed=needed,
        detail=(
            f"median of {lat.rounds} per-round ratios candidate/baseline (ms per batch of "
            f"{batch_size}), sign-test interval; PASS when its upper end is below "
            f"+{t.max_latency_increase:.0%}, FAIL when its lower end is above{why}"
        ),
    )


def evaluate_checks(
    thresholds: GateThresholds,
    accuracy: PairedAccuracy,
    latency: PairedRatio | None,
    batch_size: int = 64,
) -> list[GateCheck]:
    """The checks of a verdict, in the order a table shows them."""
    checks = [accuracy_check(thresholds, accuracy)]
    if latency is not None:
        checks.append(latency_check(thresholds, latency, batch_size))
    return checks


def overall_verdict(checks: list[GateCheck]) -> Verdict:
    """FAIL when a check fails, else INCONCLUSIVE when one is undecided, else PASS."""
    if not checks or any(c.verdict == FAIL for c in checks):
        return FAIL
    return INCONCLUSIVE if any(c.verdict == INCONCLUSIVE for c in checks) else PASS


def evidence_needed(checks: list[GateCheck]) -> str | None:
    """The evidence an INCONCLUSIVE verdict still needs, in words (None when decided)."""
    parts = []
    for c in checks:
        if c.verdict != INCONCLUSIVE:
            continue
        what = "labelled images" if c.name == "accuracy" else "latency rounds"
        if c.needed is None:
            parts.append(f"{c.name}: cannot be decided cheaply (the estimate sits at the margin)")
        else:
            parts.append(f"{c.name}: about {c.needed:,} more {what}")
    return "; ".join(parts) or None


def judge(state: GateState, cmd: EvaluateGate) -> Event:
    """The verdict event, or GateErrored when the inputs cannot be compared."""
    if not np.array_equal(np.asarray(cmd.baseline_labels), np.asarray(cmd.candidate_labels)):
        return GateErrored(
            gate_id=state.gate_id,
            reason=(
                "the two evaluations did not see the same labelled images "
                f"({len(cmd.baseline_labels)} vs {len(cmd.candidate_labels)} labels, or "
                "labels differ); re-run both on the same dataset"
            ),
        )
    t = state.thresholds
    try:
        acc = paired_accuracy(
            cmd.baseline_labels,
            cmd.baseline_predictions,
            cmd.candidate_predictions,
            confidence=1 - 2 * t.alpha,
        )
        lat = paired_ratio(cmd.baseline_latency_ms, cmd.candidate_latency_ms, t.alpha)
    except InvalidInput as exc:
        return GateErrored(gate_id=state.gate_id, reason=str(exc))
    checks = evaluate_checks(t, acc, lat, cmd.latency_batch_size)
    return GateEvaluated(
        gate_id=state.gate_id,
        model_name=state.model_name,
        candidate_version=state.candidate_version,
        baseline_version=state.baseline_version,
        dataset_id=state.dataset_id,
        verdict=overall_verdict(checks),
        checks=checks,
        accuracy=AccuracyFigures(
            images=acc.images,
            baseline_correct=acc.baseline_correct,
            candidate_correct=acc.candidate_correct,
            only_baseline_correct=acc.only_baseline_correct,
            only_candidate_correct=acc.only_candidate_correct,
        ),
        latency=LatencyFigures(
            batch_size=cmd.latency_batch_size,
            batches=lat.rounds,
            baseline_p95_ms=lat.baseline_p95_ms,
            candidate_p95_ms=lat.candidate_p95_ms,
            ratio=lat.ratio,
            ci_low=lat.ci_low,
            ci_high=lat.ci_high,
            order=cmd.latency_order,
            statistic="median_ratio",
            unit=f"ms per batch of {cmd.latency_batch_size}",
            baseline_median_ms=lat.baseline_median_ms,
            candidate_median_ms=lat.candidate_median_ms,
        ),
        rule=NON_INFERIORITY,
        needed=evidence_needed(checks),
    )
