"""The soak's pure parts: what each minute's answers and samples add up to, and the verdict.

No I/O here: the load loops feed a ``Tally``, the sampler hands in each process's RSS and open
file descriptors, and ``verdict`` judges the finished rows against issue 25's criteria.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

NO_ANSWER = 599  # what the load loops record when a connection broke before any answer
PREDICTIONS = ("predict", "v2")  # the kinds whose latency makes the minute's p99
RSS_GROWTH_MAX = 0.05  # RSS may grow this much from the baseline minute to the last
FD_SLACK = 8  # open fds may move this much (pooled connections come and go); more is a leak
BASELINE_MINUTE = 2  # growth counts from the end of this minute ("after the first two")
# Answers that are the load's own doing, not faults: feedback for a request the capture policy
# (a sampled fraction, a rate cap) did not keep is unknown to the recorder, as it should be.
EXPECTED = {("feedback", 404)}


def p99(latencies: list[float]) -> float | None:
    """The 99th percentile (nearest rank) of ``latencies``; None when there are none."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def classify(kind: str, status: int) -> str:
    """'ok' (2xx/3xx), 'expected' (EXPECTED), '5xx', 'no answer' (connection broken) or '4xx'."""
    if (kind, status) in EXPECTED:
        return "expected"
    if status == NO_ANSWER:
        return "no answer"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    return "ok"


@dataclass
class Tally:
    """One minute's answers: latencies of predictions, statuses by kind of request."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count

    def add(self, kind: str, status: int, latency_s: float) -> None:
        """Count one answer (``NO_ANSWER`` when none came)."""
        self.statuses[(kind, status)] += 1
        if kind in PREDICTIONS and status < 400:
            self.latencies.append(latency_s)


@dataclass(frozen=True)
class Jobs:
    """Batch jobs (and gates) so far: submitted, finished (any end), and the rest pending."""

    submitted: int
    finished: int

    @property
    def pending(self) -> int:
        """Submitted and not finished."""
        return self.submitted - self.finished


def minute_row(
    minute: int,
    tally: Tally,
    processes: dict[str, tuple[int, int]],
    jobs: Jobs,
    gates: Jobs,
    seconds: float = 60.0,
) -> dict:
    """One row of the report: traffic, errors, jobs and each process's (RSS bytes, fds)."""
    classes: Counter = Counter()
    by_kind: Counter = Counter()
    for (kind, status), n in tally.statuses.items():
        classes[classify(kind, status)] += n
        by_kind[kind] += n
    predictions = sum(by_kind[k] for k in PREDICTIONS)
    worst = p99(tally.latencies)
    return {
        "minute": minute,
        "predictions": predictions,
        "predictions_per_s": round(predictions / seconds, 1) if seconds > 0 else 0.0,
        "p99_ms": None if worst is None else round(worst * 1000, 1),
        "requests": dict(sorted(by_kind.items())),
        "5xx": classes["5xx"],
        "no_answer": classes["no answer"],
        "4xx": classes["4xx"],
        "statuses": {f"{k} {s}": n for (k, s), n in sorted(tally.statuses.items())},
        "jobs": {"submitted": jobs.submitted, "finished": jobs.finished, "pending": jobs.pending},
        "gates": {
            "submitted": gates.submitted,
            "finished": gates.finished,
            "pending": gates.pending,
        },
        "rss_mb": {name: round(rss / 2**20, 1) for name, (rss, _) in processes.items()},
        "fds": {name: fds for name, (_, fds) in processes.items()},
    }


@dataclass(frozen=True)
class Check:
    """One criterion: its name, whether it held, and the figures behind it."""

    name: str
    ok: bool
    detail: str


def _baseline(rows: list[dict]) -> dict:
    """The row growth counts from: minute BASELINE_MINUTE, or the last one in a shorter run."""
    return rows[min(BASELINE_MINUTE, len(rows)) - 1]


def growth(rows: list[dict]) -> dict[str, dict]:
    """Per process: RSS and fds at the baseline minute and at the last, and RSS growth."""
    base, last = _baseline(rows), rows[-1]
    out = {}
    for name, rss in last["rss_mb"].items():
        if name not in base["rss_mb"]:
            continue  # a process that appeared after the baseline (restarted): judged elsewhere
        start = base["rss_mb"][name]
        out[name] = {
            "rss_mb": (start, rss),
            "rss_growth": (rss - start) / start if start else 0.0,
            "fds": (base["fds"][name], last["fds"][name]),
        }
    return out


def verdict(rows: list[dict], ended: dict) -> list[Check]:
    """Issue 25's criteria: 0 5xx, 0 lost or stuck jobs, RSS growth ≤ 5% after minute 2, flat fds.

    ``ended`` is the count of jobs and gates after the drain: ``lost`` (unknown to the API),
    ``stuck`` (not finished), ``failed``, and the processes that exited (``exited``).
    """
    if not rows:
        return [Check("ran a minute", False, "no minute was completed")]
    five = sum(r["5xx"] for r in rows) + ended.get("drain_5xx", 0)
    broken = sum(r["no_answer"] for r in rows)
    grown = growth(rows)
    rss_bad = {n: g for n, g in grown.items() if g["rss_growth"] > RSS_GROWTH_MAX}
    fd_bad = {n: g for n, g in grown.items() if g["fds"][1] - g["fds"][0] > FD_SLACK}
    lost, stuck, failed = ended["lost"], ended["stuck"], ended["failed"]
    base = min(BASELINE_MINUTE, len(rows))
    worst_rss = max(grown.items(), key=lambda kv: kv[1]["rss_growth"], default=None)
    worst_fd = max(grown.items(), key=lambda kv: kv[1]["fds"][1] - kv[1]["fds"][0], default=None)
    return [
        Check("0 5xx", five == 0, f"{five} 5xx"),
        Check("every request answered", broken == 0, f"{broken} without an answer"),
        Check(
            "0 lost or stuck jobs",
            lost == stuck == failed == 0,
            f"{ended['jobs']} jobs and {ended['gates']} gates: "
            f"{lost} lost, {stuck} stuck, {failed} failed",
        ),
        Check(
            f"RSS growth ≤ {RSS_GROWTH_MAX:.0%} after minute {base}",
            not rss_bad,
            _rss_detail(rss_bad or dict([worst_rss] if worst_rss else [])),
        ),
        Check(
            f"flat fds (≤ +{FD_SLACK}) after minute {base}",
            not fd_bad,
            _fd_detail(fd_bad or dict([worst_fd] if worst_fd else [])),
        ),
        Check("no process exited", not ended["exited"], ", ".join(ended["exited"]) or "none"),
    ]


def _rss_detail(grown: dict[str, dict]) -> str:
    return ", ".join(
        f"{n} {g['rss_mb'][0]:.0f}→{g['rss_mb'][1]:.0f} MB ({g['rss_growth']:+.1%})"
        for n, g in grown.items()
    )


def _fd_detail(grown: dict[str, dict]) -> str:
    return ", ".join(f"{n} {g['fds'][0]}→{g['fds'][1]}" for n, g in grown.items())
