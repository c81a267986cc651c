"""From the counts of paired outcomes to figures and a verdict (pure).

Three paired checks, each a sequential non-inferiority test (domain.online.sequential):
accuracy on the requests that got feedback (candidate right minus prod right, McNemar's
discordant pairs), errors (one side failed), and latency (the share of requests where the
candidate took more than 1 + margin times prod's time: its median paired ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.online import sequential as sq
from events.online import Check, Margins, OnlineFigures


@dataclass(frozen=True)
class Counts:
    """What a run's paired outcomes add up to (labels from feedback joined)."""

    outcomes: int = 0
    candidate_served: int = 0  # of those, the candidate answered the client (a canary's step)
    agree: int = 0  # both answered the same class
    labelled: int = 0  # both answered and feedback gave a label
    prod_right: int = 0
    candidate_right: int = 0
    candidate_only_right: int = 0
    prod_only_right: int = 0
    prod_errors: int = 0
    candidate_errors: int = 0
    candidate_only_errors: int = 0
    prod_only_errors: int = 0
    answered: int = 0  # both answered
    timed: int = 0  # both answered, both latencies known
    slower: int = 0  # of those, candidate > (1 + margin) x prod
    prod_p95_ms: float | None = None
    candidate_p95_ms: float | None = None


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 6) if n else None


def _check(name: str, d: sq.Decision) -> Check:
    def r(v):
        return None if v is None else round(v, 6)

    return Check(
        name=name,
        outcome=d.outcome,
        n=d.n,
        estimate=r(d.mean),
        lower=r(d.lower),
        upper=r(d.upper),
        needed=d.needed,
    )


def _slower(d: sq.Decision) -> Check:
    """The latency check shown as the share of requests where the candidate was slower."""
    k = _check("latency", d)

    def flip(v):
        return None if v is None else round(-v, 6)

    return Check(
        name=k.name,
        outcome=k.outcome,
        n=k.n,
        estimate=flip(k.estimate),
        lower=flip(k.upper),
        upper=flip(k.lower),
        needed=k.needed,
    )


def judge(c: Counts, m: Margins) -> tuple[str, OnlineFigures]:
    """The verdict (FAIL if any check failed, PASS if all passed) and the figures."""
    accuracy = sq.accuracy_noninferiority(
        c.candidate_only_right,
        c.prod_only_right,
        c.labelled - c.candidate_only_right - c.prod_only_right,
        m.accuracy,
        m.alpha,
        min_n=m.min_labelled,
    )
    errors = sq.error_noninferiority(
        c.candidate_only_errors,
        c.prod_only_errors,
        c.outcomes - c.candidate_only_errors - c.prod_only_errors,
        m.errors,
        m.alpha,
        min_n=m.min_labelled,
    )
    latency = sq.latency_noninferiority(c.slower, c.timed - c.slower, m.alpha, min_n=m.min_labelled)
    checks = [_check("accuracy", accuracy), _check("errors", errors), _slower(latency)]
    ratio = None
    if c.prod_p95_ms and c.candidate_p95_ms is not None:
        ratio = round(c.candidate_p95_ms / c.prod_p95_ms, 4)
    figures = OnlineFigures(
        outcomes=c.outcomes,
        labelled=c.labelled,
        agreement=_rate(c.agree, c.answered),
        prod_accuracy=_rate(c.prod_right, c.labelled),
        candidate_accuracy=_rate(c.candidate_right, c.labelled),
        prod_error_rate=_rate(c.prod_errors, c.outcomes),
        candidate_error_rate=_rate(c.candidate_errors, c.outcomes),
        prod_p95_ms=c.prod_p95_ms,
        candidate_p95_ms=c.candidate_p95_ms,
        p95_ratio=ratio,
        checks=checks,
    )
    return sq.combine([accuracy, errors, latency]), figures


def failing(figures: OnlineFigures) -> Check | None:
    """The first failing check, if any."""
    return next((k for k in figures.checks if k.outcome == sq.FAIL), None)


def describe(check: Check) -> str:
    """One line about a check, e.g. 'accuracy FAIL: -0.031 [-0.045, -0.018] on 1,204'."""
    if check.estimate is None:
        return f"{check.name} {check.outcome}: no data yet"
    text = f"{check.name} {check.outcome}: {check.estimate:+.4f}"
    if check.lower is not None and check.upper is not None:
        text += f" [{check.lower:+.4f}, {check.upper:+.4f}]"
    text += f" on {check.n:,}"
    if check.outcome == sq.INCONCLUSIVE:
        text += (
            f", ~{check.needed:,} more needed" if check.needed else ", cannot be decided cheaply"
        )
    return text
