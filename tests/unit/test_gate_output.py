"""How the CLI shows a verdict: INCONCLUSIVE has its own colour, notes and exit code, and a
verdict recorded under the old rule keeps its old labels."""

from __future__ import annotations

from datetime import UTC, datetime

from cli.gate_commands import EXIT_INCONCLUSIVE, show
from cli.gate_output import check_row, non_inferiority, verdict_notes, verdict_table
from domain.gates.views import GateView
from events.gates import AccuracyFigures, GateCheck, LatencyFigures


def _view(verdict: str, statistic: str = "median_ratio", **kw) -> GateView:
    accuracy = GateCheck(
        name="accuracy",
        baseline=0.9,
        candidate=0.9,
        delta=0.0,
        threshold=-0.01,
        verdict=verdict,
        p_value=1.0,
        ci_low=-0.03,
        ci_high=0.03,
        needed=685,
    )
    latency = LatencyFigures(
        batch_size=64,
        batches=40,
        baseline_p95_ms=12.0,
        candidate_p95_ms=12.5,
        ratio=1.01,
        ci_low=0.98,
        ci_high=1.04,
        statistic=statistic,
        unit="ms per batch of 64",
    )
    return GateView(
        gate_id="7a74f106-43f7-4698-8994-6392c7628189",
        model_name="m",
        candidate_version="v2",
        baseline_version="v1",
        dataset_id="fashion_mnist_100",
        status="inconclusive" if verdict == "INCONCLUSIVE" else "passed",
        verdict=verdict,
        checks=[accuracy],
        accuracy=AccuracyFigures(
            images=100,
            baseline_correct=90,
            candidate_correct=90,
            only_baseline_correct=0,
            only_candidate_correct=0,
        ),
        latency=latency,
        requested_by="alice",
        requested_at=datetime(2030, 1, 1, tzinfo=UTC),
        **kw,
    )


def test_an_inconclusive_verdict_says_what_it_needs_and_exits_4() -> None:
    view = _view("INCONCLUSIVE", needed="accuracy: about 685 more labelled images")
    assert non_inferiority(view)
    notes = verdict_notes(view)
    assert notes[-1] == "INCONCLUSIVE: needs accuracy: about 685 more labelled images"
    assert "median per-round ratio 1.010" in notes[1] and "ms per batch of 64" in notes[1]
    assert "yellow" in check_row(view.checks[0])[-1]
    assert [c.header for c in verdict_table(view).columns][6] == "95% interval"
    assert show(view, as_json=True) == EXIT_INCONCLUSIVE == 4
    assert show(_view("PASS"), as_json=True) == 0


def test_an_old_verdict_keeps_its_labels() -> None:
    old = _view("PASS", statistic="p95_ratio")
    assert not non_inferiority(old)
    assert "p95 ratio 1.010 (bootstrap 95% interval" in verdict_notes(old)[1]
    row = check_row(
        GateCheck(
            name="p95_latency",
            baseline=12.0,
            candidate=12.5,
            delta=0.04,
            threshold=0.1,
            verdict="PASS",
            ci_low=-0.02,
            ci_high=0.1,
        )
    )
    assert row[1:4] == ["12.00 ms", "12.50 ms", "+4.0%"]
