"""bench-predict keeps each endpoint's median round of its interleaved rounds."""

from bench.bench_predict import median_round


def test_the_median_round_is_kept_whole_with_every_rounds_rate() -> None:
    rows = [
        {"qps": 900.0, "p50_ms": 1.9},
        {"qps": 1200.0, "p50_ms": 1.4},
        {"qps": 1000.0, "p50_ms": 1.6},
    ]
    kept = median_round(rows)
    assert (kept["qps"], kept["p50_ms"]) == (1000.0, 1.6)  # one real round, not mixed figures
    assert kept["rounds_qps"] == [900.0, 1200.0, 1000.0]


def test_one_round_is_itself_and_two_keep_the_lower() -> None:
    assert median_round([{"qps": 5.0}]) == {"qps": 5.0, "rounds_qps": [5.0]}
    assert median_round([{"qps": 7.0}, {"qps": 5.0}])["qps"] == 5.0
