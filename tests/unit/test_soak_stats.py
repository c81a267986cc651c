"""`just soak`'s pure parts: a minute's row from its answers and samples, and the verdict."""

from __future__ import annotations

from bench.soak.stats import (
    FD_SLACK,
    NO_ANSWER,
    Jobs,
    Tally,
    classify,
    growth,
    minute_row,
    p99,
    verdict,
)

MB = 2**20
CLEAN = {"jobs": 4, "gates": 2, "lost": 0, "stuck": 0, "failed": 0, "exited": []}


def row(minute: int, rss_mb: float = 100.0, fds: int = 40, fivexx: int = 0) -> dict:
    """A minute with one process ``api`` at ``rss_mb`` and ``fds``."""
    tally = Tally()
    tally.add("predict", 200, 0.01)
    for _ in range(fivexx):
        tally.add("predict", 500, 0.01)
    return minute_row(minute, tally, {"api": (int(rss_mb * MB), fds)}, Jobs(2, 1), Jobs(1, 1))


def failed(checks) -> set[str]:
    """Names of the criteria that did not hold."""
    return {c.name for c in checks if not c.ok}


def test_p99_is_the_nearest_rank() -> None:
    assert p99([]) is None
    assert p99([0.5]) == 0.5
    values = [i / 1000 for i in range(1, 201)]  # 1..200 ms
    assert p99(values) == 0.198  # rank ceil(0.99 * 200) = 198
    assert p99(list(reversed(values))) == 0.198


def test_classify_keeps_the_loads_own_404s_apart() -> None:
    assert classify("predict", 200) == "ok"
    assert classify("predict", 503) == "5xx"
    assert classify("read", 404) == "4xx"
    assert classify("feedback", 404) == "expected"
    assert classify("feedback", 500) == "5xx"
    assert classify("v2", NO_ANSWER) == "no answer"


def test_minute_row_counts_by_class_and_kind() -> None:
    tally = Tally()
    for ms in range(1, 101):
        tally.add("predict" if ms % 2 else "v2", 200, ms / 1000)
    tally.add("predict", 500, 5.0)  # errors do not make the latency figure
    tally.add("v2", NO_ANSWER, 30.0)
    tally.add("read", 404, 0.002)
    tally.add("feedback", 404, 0.002)
    tally.add("batch", 202, 0.2)
    procs = {"api.1": (300 * MB, 41), "worker1": (512 * MB, 17)}
    r = minute_row(3, tally, procs, Jobs(5, 3), Jobs(2, 2), seconds=60)
    assert r["minute"] == 3
    assert r["predictions"] == 102
    assert r["predictions_per_s"] == 1.7
    assert r["p99_ms"] == 99.0
    assert (r["5xx"], r["no_answer"], r["4xx"]) == (1, 1, 1)
    assert r["requests"] == {"batch": 1, "feedback": 1, "predict": 51, "read": 1, "v2": 51}
    assert r["statuses"]["predict 500"] == 1
    assert r["jobs"] == {"submitted": 5, "finished": 3, "pending": 2}
    assert r["gates"]["pending"] == 0
    assert r["rss_mb"] == {"api.1": 300.0, "worker1": 512.0}
    assert r["fds"] == {"api.1": 41, "worker1": 17}


def test_a_clean_run_passes() -> None:
    rows = [row(1, 90), row(2, 100), row(3, 103), row(4, 104.9, 40 + FD_SLACK)]
    checks = verdict(rows, CLEAN)
    assert failed(checks) == set()
    assert growth(rows)["api"]["rss_growth"] == (104.9 - 100) / 100


def test_growth_counts_from_minute_two_not_from_the_start() -> None:
    # Warming up in the first two minutes (200 -> 400 MB) is allowed; growing after is not.
    assert not failed(verdict([row(1, 200), row(2, 400), row(3, 410)], CLEAN))
    checks = verdict([row(1, 200), row(2, 400), row(3, 430)], CLEAN)
    assert failed(checks) == {"RSS growth ≤ 5% after minute 2"}
    rss = next(c for c in checks if not c.ok)
    assert "api 400→430 MB (+7.5%)" in rss.detail


def test_growing_fds_fail() -> None:
    rows = [row(1), row(2, fds=40), row(3, fds=41 + FD_SLACK)]
    assert failed(verdict(rows, CLEAN)) == {f"flat fds (≤ +{FD_SLACK}) after minute 2"}


def test_any_5xx_fails_also_during_the_drain() -> None:
    assert failed(verdict([row(1), row(2, fivexx=1)], CLEAN)) == {"0 5xx"}
    assert failed(verdict([row(1), row(2)], {**CLEAN, "drain_5xx": 2})) == {"0 5xx"}


def test_lost_stuck_or_failed_jobs_fail() -> None:
    for key in ("lost", "stuck", "failed"):
        checks = verdict([row(1), row(2)], {**CLEAN, key: 1})
        assert failed(checks) == {"0 lost or stuck jobs"}, key


def test_an_exited_process_fails_and_no_minute_fails() -> None:
    assert failed(verdict([row(1)], {**CLEAN, "exited": ["worker2"]})) == {"no process exited"}
    assert failed(verdict([], CLEAN)) == {"ran a minute"}


def test_a_one_minute_run_judges_against_its_only_minute() -> None:
    checks = verdict([row(1, 100)], CLEAN)
    assert not failed(checks)
    assert any("after minute 1" in c.name for c in checks)
