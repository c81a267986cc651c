"""How a gate looks in the terminal: the verdict table with each check, the policy, progress."""

from __future__ import annotations

from rich.table import Table

from domain.gates.views import GateView
from domain.registry.views import JobView
from domain.transactions import CommandResult
from events.gates import GateCheck, GatePolicy
from events.registry import ModelVersionPromoted, PromotionApproved, PromotionRequested


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _pts(x: float) -> str:
    return f"{x * 100:+.2f} pts"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def check_row(c: GateCheck) -> list[str]:
    """One check as table cells: figures in the unit the check is judged in."""
    colour = {"PASS": "green", "INCONCLUSIVE": "yellow"}.get(c.verdict, "red")
    verdict = f"[bold {colour}]{c.verdict}[/]"
    interval = ""
    if c.name in ("latency", "p95_latency"):  # p95_latency: verdicts before non-inferiority
        if c.ci_low is not None and c.ci_high is not None:
            interval = f"[{c.ci_low:+.1%}, {c.ci_high:+.1%}]"
        figures = [f"{c.baseline:.2f} ms", f"{c.candidate:.2f} ms", f"{c.delta:+.1%}"]
        return [c.name, *figures, f"<= +{c.threshold:.0%}", "", interval, verdict]
    if c.ci_low is not None and c.ci_high is not None:
        interval = f"[{c.ci_low * 100:+.2f}, {c.ci_high * 100:+.2f}] pts"
    limit = (
        f"p >= {c.threshold:g} if a drop"
        if c.name == "accuracy_significance"
        else (f">= {c.threshold * 100:+.2f} pts")
    )
    return [
        c.name,
        _pct(c.baseline),
        _pct(c.candidate),
        _pts(c.delta),
        limit,
        _p(c.p_value),
        interval,
        verdict,
    ]


def non_inferiority(g: GateView) -> bool:
    """Whether a verdict was reached by non-inferiority (else by the point-estimate rule)."""
    return g.latency is not None and g.latency.statistic == "median_ratio"


def verdict_table(g: GateView) -> Table:
    """The verdict: one row per check, with the figures behind it."""
    title = (
        f"gate {g.gate_id[:8]}: {g.model_name} {g.candidate_version} (candidate) vs "
        f"{g.baseline_version} (baseline) on {g.dataset_id}: {g.verdict or g.status.upper()}"
    )
    table = Table(title=title)
    level = f"{(1 - 2 * g.thresholds.alpha) * 100:g}%" if non_inferiority(g) else "95%"
    for col in (
        "check",
        "baseline",
        "candidate",
        "delta",
        "threshold",
        "p-value",
        f"{level} interval",
        "verdict",
    ):
        table.add_column(col, justify="left" if col == "check" else "right")
    for c in g.checks:
        table.add_row(*check_row(c))
    return table


def verdict_notes(g: GateView) -> list[str]:
    """The lines under the table: the paired counts and the latency run."""
    notes = []
    new = non_inferiority(g)
    if g.accuracy is not None:
        a = g.accuracy
        how = (
            f"Newcombe {(1 - 2 * g.thresholds.alpha) * 100:g}% interval against the margin"
            if new
            else "McNemar exact test, Newcombe 95% interval"
        )
        notes.append(
            f"paired accuracy on {a.images:,} images: both right or both wrong on "
            f"{a.images - a.only_baseline_correct - a.only_candidate_correct:,}, only the candidate "
            f"right on {a.only_candidate_correct:,}, only the baseline right on "
            f"{a.only_baseline_correct:,} ({how})"
        )
    if g.latency is not None:
        lat = g.latency
        if new:
            notes.append(
                f"paired latency in {lat.unit}: {lat.batches} rounds, the two versions "
                f"alternated {lat.order} on the same batches; median per-round ratio "
                f"{lat.ratio:.3f} (sign-test interval {lat.ci_low:.3f}-{lat.ci_high:.3f})"
            )
        else:
            notes.append(
                f"paired latency: {lat.batches} batches of {lat.batch_size} images, the two "
                f"versions alternated {lat.order} on the same batches; p95 ratio {lat.ratio:.3f} "
                f"(bootstrap 95% interval {lat.ci_low:.3f}-{lat.ci_high:.3f}); recorded under the "
                "point-estimate rule"
            )
    if g.verdict == "INCONCLUSIVE":
        notes.append(f"INCONCLUSIVE: needs {g.needed or 'more evidence'}")
    return notes


def progress_line(g: GateView, jobs: dict[str, JobView | None]) -> str:
    """Where a gate is: its status and how far each evaluation job has got."""
    parts = []
    for version, job_id in (
        (g.candidate_version, g.candidate_job_id),
        (g.baseline_version, g.baseline_job_id),
    ):
        job = jobs.get(job_id or "")
        if job is None:
            continue
        reused = "" if job_id in g.submitted else ", recorded earlier"
        parts.append(
            f"{version}: {job.status} {job.progress.done:,}/{job.progress.total:,} images{reused}"
        )
        if g.candidate_job_id == g.baseline_job_id:
            break
    waiting = "; ".join(parts) or "waiting for the gate-evaluation group"
    return f"gate {g.gate_id[:8]} {g.status}: {waiting}"


def policy_table(model_name: str, p: GatePolicy) -> Table:
    """A model's gate policy."""
    t = p.thresholds
    table = Table(title=f"gate policy of {model_name}")
    table.add_column("setting")
    table.add_column("value", justify="right")
    for key, value in (
        ("max_accuracy_drop", f"{t.max_accuracy_drop * 100:g} pts"),
        ("max_latency_increase", f"{t.max_latency_increase:.0%} (median paired ratio)"),
        ("alpha", f"{t.alpha:g} (one-sided)"),
        ("min_images", f"{t.min_images:,}"),
        ("on_inconclusive", p.on_inconclusive),
        ("require_gate", str(p.require_gate).lower()),
        ("max_gate_age_s", f"{p.max_gate_age_s:,}"),
        ("auto_gate", str(p.auto_gate).lower()),
        ("auto_promote", str(p.auto_promote).lower()),
        ("gate_dataset", p.gate_dataset or "the model's reference dataset"),
        ("min_gate_images", f"{p.min_gate_images:,}"),
        ("force_role", p.force_role),
        ("approvals_required", str(p.approvals_required)),
        ("max_request_age_s", f"{p.max_request_age_s:,}"),
    ):
        table.add_row(key, value)
    return table


def approval_line(result: CommandResult) -> str:
    """What an approval did: promoted (naming the requester and approvers) or still waiting."""
    events = [r.event for r in result.recorded]
    promoted = next((e for e in events if isinstance(e, ModelVersionPromoted)), None)
    approved = next(e for e in events if isinstance(e, PromotionApproved))
    who = f"{approved.model_name} {approved.model_version}"
    if promoted is not None:
        prev = f" (demoted {promoted.previous_prod})" if promoted.previous_prod else ""
        return (
            f"approved and promoted {who} to prod{prev}: requested by {promoted.requested_by}, "
            f"approved by {', '.join(promoted.approved_by)}"
        )
    pending = result.state.requests[approved.model_version]
    return (
        f"approved {who} (requested by {pending.requested_by}); "
        f"{1 + len(pending.approved_by)} of {pending.approvals_required} keys so far"
    )


def request_line(e: PromotionRequested, actor: str) -> str:
    """A promotion that became a request (four eyes): who must do what next."""
    return (
        f"requested promotion of {e.model_name} {e.model_version} as {actor}: "
        f"{e.approvals_required - 1} more key(s) must approve before {e.expires_at:%Y-%m-%d %H:%M} "
        f"UTC (`just approve {e.model_name} {e.model_version} --reason '...'`)"
    )
