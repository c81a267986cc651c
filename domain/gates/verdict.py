"""A gate's verdict: the checks computed from paired statistics, and the event that says it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from domain.errors import InvalidInput
from domain.gates.commands import EvaluateGate
from domain.gates.stats import PairedAccuracy, PairedLatency, paired_accuracy, paired_latency
from events.base import Event
from events.gates import (
    FAIL,
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

# Float slack so a drop of exactly the threshold (e.g. 100 of 10 000 images) passes.
_EPS = 1e-12


def evaluate_checks(
    thresholds: GateThresholds, accuracy: PairedAccuracy, latency: PairedLatency | None
) -> list[GateCheck]:
    """The checks of a verdict, in the order a table shows them."""
    t = thresholds
    acc = dict(
        baseline=accuracy.baseline_accuracy,
        candidate=accuracy.candidate_accuracy,
        delta=accuracy.delta,
        p_value=accuracy.p_value,
        ci_low=accuracy.ci_low,
        ci_high=accuracy.ci_high,
    )
    discordant = (
        f"candidate alone right on {accuracy.only_candidate_correct}, baseline alone right on "
        f"{accuracy.only_baseline_correct} of {accuracy.images} images"
    )
    checks = [
        GateCheck(
            name="accuracy",
            threshold=-t.max_accuracy_drop,
            verdict=_verdict(accuracy.delta >= -t.max_accuracy_drop - _EPS),
            detail=f"drop at most {t.max_accuracy_drop * 100:g} points; {discordant}",
            **acc,
        )
    ]
    if t.require_not_significant:
        significant_drop = accuracy.delta < 0 and accuracy.p_value < t.alpha
        checks.append(
            GateCheck(
                name="accuracy_significance",
                threshold=t.alpha,
                verdict=_verdict(not significant_drop),
                detail=f"no drop significant at alpha {t.alpha:g} (McNemar exact)",
                **acc,
            )
        )
    if latency is not None:
        # Latency is measured with noise (accuracy on a fixed test set is not): a rise above the
        # threshold fails only when the interval of the ratio also lies above 1, so the same
        # version against itself cannot fail on one unlucky run of a busy machine.
        too_slow = latency.ratio - 1 > t.max_p95_latency_increase + _EPS and latency.ci_low > 1
        checks.append(
            GateCheck(
                name="p95_latency",
                baseline=latency.baseline_p95_ms,
                candidate=latency.candidate_p95_ms,
                delta=latency.ratio - 1,
                threshold=t.max_p95_latency_increase,
                verdict=_verdict(not too_slow),
                ci_low=latency.ci_low - 1,
                ci_high=latency.ci_high - 1,
                detail=(
                    f"rise at most {t.max_p95_latency_increase:.0%} (or not distinguishable from "
                    f"noise); ms per batch, {latency.batches} paired batches"
                ),
            )
        )
    return checks


def overall_verdict(checks: list[GateCheck]) -> Verdict:
    """PASS only when there are checks and every one passes."""
    return PASS if checks and all(c.verdict == PASS for c in checks) else FAIL


def _verdict(ok: bool) -> Verdict:
    return PASS if ok else FAIL


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
    confidence = 1 - state.thresholds.alpha
    try:
        acc = paired_accuracy(
            cmd.baseline_labels,
            cmd.baseline_predictions,
            cmd.candidate_predictions,
            confidence=confidence,
        )
        lat = paired_latency(
            cmd.baseline_latency_ms, cmd.candidate_latency_ms, confidence=confidence
        )
    except InvalidInput as exc:
        return GateErrored(gate_id=state.gate_id, reason=str(exc))
    checks = evaluate_checks(state.thresholds, acc, lat)
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
            batches=lat.batches,
            baseline_p95_ms=lat.baseline_p95_ms,
            candidate_p95_ms=lat.candidate_p95_ms,
            ratio=lat.ratio,
            ci_low=lat.ci_low,
            ci_high=lat.ci_high,
            order=cmd.latency_order,
        ),
    )
