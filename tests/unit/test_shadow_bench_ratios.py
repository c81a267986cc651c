"""bench-shadow reads its targets on the median of per-block ratios, not on pooled rounds."""

from bench.shadow_load import order, ratios


def _row(arm: str, block: int, qps: float, p99: float, requests: int = 100) -> dict:
    return {"arm": arm, "block": block, "qps": qps, "p99_ms": p99, "requests": requests}


def _arm(name: str, fraction, qps: float, p99: float, requests: int = 300) -> dict:
    return {
        "arm": name,
        "fraction": fraction,
        "qps": qps,
        "p99_ms": p99,
        "errors": 0,
        "mirrored": requests if fraction == 1.0 else 0,
        "dropped": 0,
        "requests": requests,
    }


def test_order_is_counterbalanced_in_blocks_of_every_arm() -> None:
    assert order(2) == ["none", "shadow 0.1", "shadow 1.0", "shadow 1.0", "shadow 0.1", "none"]
    blocks = [set(order(5)[i : i + 3]) for i in range(0, 15, 3)]
    assert all(b == {"none", "shadow 0.1", "shadow 1.0"} for b in blocks)


def test_one_disturbed_round_does_not_decide_the_targets() -> None:
    # Three blocks where the shadow costs 5% of throughput and 10% of p99; in the third the
    # machine slowed the shadow's round to half (a neighbour's burst).
    rounds = []
    for block, disturbed in ((0, False), (1, False), (2, True)):
        rounds.append(_row("none", block, 2000.0, 20.0))
        slow = 2.0 if disturbed else 1.0
        rounds.append(_row("shadow 0.1", block, 1900.0 / slow, 22.0 * slow))
        rounds.append(_row("shadow 1.0", block, 1800.0, 24.0))
    # Pooled over rounds the disturbed round drags 0.1 under its targets ...
    arms = [
        _arm("none", None, 2000.0, 20.0),
        _arm("shadow 0.1", 0.1, 1583.0, 44.0),
        _arm("shadow 1.0", 1.0, 1800.0, 24.0),
    ]
    r = ratios(arms, rounds)
    assert r["shadow 0.1"]["pooled_qps_ratio"] < 0.9
    assert r["shadow 0.1"]["pooled_p99_ratio"] > 1.2
    # ... the median of the blocks' paired ratios reads the shadow's real cost.
    assert r["shadow 0.1"]["qps_ratio"] == 0.95
    assert r["shadow 0.1"]["p99_ratio"] == 1.1
    assert r["shadow 0.1"]["qps_ratios"] == [0.95, 0.95, 0.475]
    assert all(r["targets"].values())


def test_a_shadow_that_costs_too_much_in_every_block_misses() -> None:
    rounds = []
    for block in range(3):
        rounds += [
            _row("none", block, 2000.0, 20.0),
            _row("shadow 0.1", block, 1700.0, 26.0),
            _row("shadow 1.0", block, 1800.0, 24.0),
        ]
    arms = [
        _arm("none", None, 2000.0, 20.0),
        _arm("shadow 0.1", 0.1, 1700.0, 26.0),
        _arm("shadow 1.0", 1.0, 1800.0, 24.0),
    ]
    t = ratios(arms, rounds)["targets"]
    assert not t["fraction 0.1: qps >= 0.9x"]
    assert not t["fraction 0.1: p99 <= 1.2x"]
    assert t["fraction 1.0: no prod error"]
