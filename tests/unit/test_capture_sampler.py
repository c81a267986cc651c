"""The capture sampler on the response path: policy lookup, rate, kept requests, a full queue."""

from __future__ import annotations

import random

import numpy as np
import pytest

from api.capture import CaptureSampler, to_row
from api.online_hooks import OnlineHooks, Served
from domain.traffic.policy import CapturePolicy

pytestmark = pytest.mark.anyio


class _Redis:
    def __init__(self) -> None:
        self.entries: list[dict] = []

    async def xadd(self, stream, fields, maxlen=None, approximate=None):
        self.entries.append(fields)


def _served(rid: str, name: str = "m", keep: bool = False) -> Served:
    return Served(
        rid, name, "v1", "v1", np.full((28, 28), 7, np.uint8), 3, [0.5] * 10, 1.0, keep=keep
    )


def _sampler(queue_size: int = 100, **policy) -> CaptureSampler:
    s = CaptureSampler(_Redis(), None, queue_size=queue_size)  # type: ignore[arg-type]
    if policy:
        s.policies["m"] = CapturePolicy(model_name="m", **policy)
    return s


def test_a_model_without_a_policy_is_skipped_unless_kept() -> None:
    s = _sampler()
    hooks = OnlineHooks()
    hooks.capture = s
    assert not hooks.wants("m")
    hooks.after(_served("a"))
    hooks.after(_served("b", keep=True))
    assert s.queue.qsize() == 1 and s.queue.get_nowait()[0].request_id == "b"


def test_max_per_s_bounds_what_is_sampled() -> None:
    s = _sampler(fraction=1.0, max_per_s=3.0, retention_days=7)
    for i in range(100):
        s.after(_served(str(i)))
    assert 3 <= s.queue.qsize() <= 4  # one second's burst (a refill between calls at most)


def test_fraction_zero_point_five_samples_about_half() -> None:
    random.seed(1)
    s = _sampler(queue_size=10_000, fraction=0.5, max_per_s=10_000.0, retention_days=7)
    for i in range(2000):
        s.after(_served(str(i)))
    assert 850 < s.queue.qsize() < 1150


def test_a_full_queue_drops_and_never_raises() -> None:
    s = _sampler(queue_size=2, fraction=1.0, max_per_s=1000.0, retention_days=7)
    for i in range(5):
        s.after(_served(str(i)))
    assert s.queue.qsize() == 2


async def test_a_batch_is_one_xadd_with_the_policy_retention() -> None:
    s = _sampler(fraction=1.0, max_per_s=1000.0, retention_days=9)
    for i in range(3):
        s.after(_served(str(i)))
    batch = [s.queue.get_nowait() for _ in range(3)]
    await s.flush(batch)
    from domain.traffic.commands import decode_rows

    (entry,) = s.redis.entries
    rows = decode_rows(entry["rows"])
    assert [r.request_id for r in rows] == ["0", "1", "2"] and rows[0].retention_days == 9
    assert np.frombuffer(rows[0].input, np.uint8).reshape(28, 28)[0, 0] == 7


def test_float_inputs_are_kept_as_float32() -> None:
    served = _served("f")
    served.input = np.full((28, 28), 0.25, np.float32)
    from datetime import UTC, datetime

    row = to_row(served, 7, datetime.now(UTC))
    assert row.input_dtype == "float32" and np.frombuffer(row.input, np.float32)[0] == 0.25
