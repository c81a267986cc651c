"""The mirror's share of the inference thread while requests wait (api/mirror_forwards.py)."""

from __future__ import annotations

from api.mirror_forwards import MirrorBudget


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_with_nothing_waiting_a_lot_always_runs() -> None:
    clock = _Clock()
    budget = MirrorBudget(share=0.05, burst=0.05, clock=clock)
    budget.spend(1.0)  # far beyond the bucket
    assert budget.allows(waiting=False)
    assert budget.tokens == -0.05  # in debt by one bucket at most


def test_while_requests_wait_lots_run_within_the_share() -> None:
    clock = _Clock()
    budget = MirrorBudget(share=0.05, burst=0.05, clock=clock)
    assert budget.allows(waiting=True)
    budget.spend(0.05)  # the bucket is spent
    assert not budget.allows(waiting=True)
    clock.now += 0.5  # 0.5 s x 5% = 25 ms back
    assert budget.allows(waiting=True)
    budget.spend(0.03)
    assert not budget.allows(waiting=True)
    clock.now += 10.0  # refills to the bucket's depth, not beyond
    assert budget.allows(waiting=True) and budget.tokens == 0.05


def test_over_a_minute_of_waiting_the_mirror_takes_about_its_share() -> None:
    clock = _Clock()
    budget = MirrorBudget(share=0.02, burst=0.05, clock=clock)
    spent = 0.0
    for _ in range(60_000):  # a lot offered every millisecond, each costing 4 ms
        clock.now += 0.001
        if budget.allows(waiting=True):
            budget.spend(0.004)
            spent += 0.004
    assert 0.02 * 60 <= spent <= 0.02 * 60 + 0.05 + 0.004
