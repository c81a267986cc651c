"""One-line summaries of the online-evaluation and traffic events in a model's history (pure).

Kept apart from the registry's own summaries (domain/registry/views.py): these events live on
the model's ``online-`` and ``capture-`` streams and on frozen traffic datasets' streams.
"""

from __future__ import annotations

from events.online import (
    CanaryAborted,
    CanaryCompleted,
    CanaryStarted,
    CanaryStepped,
    Check,
    OnlineFigures,
    ShadowStarted,
    ShadowStopped,
    ShadowVerdict,
)
from events.traffic import CapturePolicySet, TrafficDatasetFrozen

ONLINE_EVENTS = (
    ShadowStarted,
    ShadowStopped,
    ShadowVerdict,
    CanaryStarted,
    CanaryStepped,
    CanaryAborted,
    CanaryCompleted,
)
TRAFFIC_EVENTS = (CapturePolicySet, TrafficDatasetFrozen)
_SHADOW_ENDS = {
    "stopped": "stopped by hand",
    "expired": "ended: its duration ran out",
    "prod-changed": "ended: prod changed under it",
}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def check_line(k: Check) -> str:
    """'accuracy PASS -0.0040 on 1,204' (what an INCONCLUSIVE check still needs, if known)."""
    text = f"{k.name} {k.outcome}"
    if k.estimate is not None:
        text += f" {k.estimate:+.4f} on {k.n:,}"
    if k.outcome == "INCONCLUSIVE" and k.needed:
        text += f" (~{k.needed:,} more)"
    return text


def figures_line(f: OnlineFigures | None) -> str:
    """The figures of a verdict or step in one clause."""
    if f is None:
        return "no outcomes"
    parts = [f"{f.outcomes:,} paired, {f.labelled:,} labelled"]
    if f.agreement is not None:
        parts.append(f"agreement {_pct(f.agreement)}")
    if f.prod_accuracy is not None or f.candidate_accuracy is not None:
        parts.append(f"accuracy {_pct(f.prod_accuracy)} → {_pct(f.candidate_accuracy)}")
    checks = ", ".join(check_line(k) for k in f.checks)
    return "; ".join(parts) + (f"; {checks}" if checks else "")


def _margins(e: ShadowStarted | CanaryStarted) -> str:
    m = e.margins
    return (
        f"margins {m.accuracy * 100:g} pts accuracy, {m.errors * 100:g} pts errors, "
        f"{m.latency:.0%} latency at alpha {m.alpha:g}"
    )


def online_summary(e) -> str:
    """One line for a shadow or canary event."""
    match e:
        case ShadowStarted():
            until = f" until {e.until:%Y-%m-%d %H:%M} UTC" if e.until else ""
            return (
                f"shadow {e.shadow_id[:8]} started: {e.candidate_version} answers "
                f"{e.fraction:.0%} of prod {e.prod_version}'s requests{until}; {_margins(e)}"
            )
        case ShadowVerdict():
            return f"shadow {e.shadow_id[:8]} {e.verdict}: {figures_line(e.figures)}"
        case ShadowStopped():
            how = _SHADOW_ENDS.get(e.why, f"ended ({e.why})")
            return f"shadow {e.shadow_id[:8]} {how}"
        case CanaryStarted():
            steps = " → ".join(f"{s}%" for s in e.steps)
            return (
                f"canary {e.canary_id[:8]} started: {e.candidate_version} vs prod "
                f"{e.prod_version}, steps {steps}, {e.min_requests:,} requests a step, "
                f"at most {e.max_duration_s:g} s; {_margins(e)}"
            )
        case CanaryStepped():
            return (
                f"canary {e.canary_id[:8]} stepped to {e.share}% (step {e.step + 1}): "
                f"{figures_line(e.figures)}"
            )
        case CanaryAborted():
            by = "by hand" if e.check == "stopped" else f"by the {e.check} check"
            return f"canary {e.canary_id[:8]} ABORTED at step {e.step + 1} {by}: {e.why}"
        case CanaryCompleted():
            how = (
                f"passed; promotion request {e.approval_request[:8]} awaits approval"
                if e.approval_request
                else "passed every step; candidate promoted"
            )
            return f"canary {e.canary_id[:8]} {how}: {figures_line(e.figures)}"
    return type(e).__name__


def traffic_summary(e) -> str:
    """One line for a capture policy or a dataset frozen from captured traffic."""
    match e:
        case CapturePolicySet():
            if e.fraction == 0:
                return "capture policy: capture stopped (fraction 0)"
            return (
                f"capture policy: {e.fraction:.1%} of requests, at most {e.max_per_s:g}/s per "
                f"API process, kept {e.retention_days} days"
            )
        case TrafficDatasetFrozen():
            only = " (labelled only)" if e.labelled_only else ""
            return (
                f"froze {len(e.request_ids):,} captured requests{only} into {e.dataset_id} "
                f"({e.labelled:,} labelled, sha256 {e.digest[:12]})"
            )
    return type(e).__name__
