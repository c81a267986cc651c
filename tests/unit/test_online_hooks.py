"""The request path hooks: request ids, routing and who gets an answered request."""

from __future__ import annotations

import numpy as np
import pytest

from api.online_hooks import OnlineHooks, Served, valid_request_id


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Follower:
    def __init__(self, models: set[str], *, keep: bool = False, fail: bool = False) -> None:
        self.models, self.keep, self.fail = models, keep, fail
        self.seen: list[Served] = []

    def wants(self, model_name: str) -> bool:
        return model_name in self.models

    def after(self, served: Served) -> None:
        if self.fail:
            raise RuntimeError("boom")
        if self.keep:
            served.keep = True
        self.seen.append(served)


def _served(name: str = "m") -> Served:
    return Served("r1", name, "v1", "v1", np.zeros((28, 28), np.uint8), 3, [0.0] * 10, 1.0)


@pytest.mark.parametrize("value", ["a", "abc-123_x.y:z", "A" * 64])
def test_a_valid_client_id_is_kept(value: str) -> None:
    assert OnlineHooks().request_id(_Request({"x-request-id": value})) == value


@pytest.mark.parametrize("value", ["", "A" * 65, "has space", "semi;colon", "ü"])
def test_an_invalid_or_missing_id_is_replaced_by_a_uuid(value: str) -> None:
    rid = OnlineHooks().request_id(_Request({"x-request-id": value} if value else {}))
    assert rid != value and len(rid) == 32 and valid_request_id(rid)


def test_no_router_routes_to_prod_and_no_follower_wants_anything() -> None:
    hooks = OnlineHooks()
    assert hooks.route("m", "r1", None) is None
    assert not hooks.wants("m")


def test_capture_runs_last_and_takes_kept_requests_without_a_policy() -> None:
    hooks = OnlineHooks()
    capture = _Follower(set())
    hooks.capture = capture
    hooks.subscribe(_Follower({"m"}, keep=True))
    assert hooks.wants("m") and not hooks.wants("other")
    hooks.after(_served())
    assert [s.request_id for s in capture.seen] == ["r1"]


def test_a_failing_follower_never_raises_and_others_still_run() -> None:
    hooks = OnlineHooks()
    good = _Follower({"m"})
    hooks.subscribe(_Follower({"m"}, fail=True))
    hooks.subscribe(good)
    hooks.after(_served())
    assert len(good.seen) == 1
