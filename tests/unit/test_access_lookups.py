"""Access's key lookups on a fake key store: requests that find an expired cache share one lookup."""

from __future__ import annotations

import asyncio

import pytest

from api.access import Access
from domain.keys.aggregate import KeyIdentity, hash_key
from domain.keys.buckets import TokenBuckets
from settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedKeys:
    """A KeyReader that counts its lookups and answers only once ``release`` is set."""

    def __init__(self, active: bool = True, fail: bool = False) -> None:
        self.active, self.fail = active, fail
        self.identify_calls = self.any_active_calls = 0
        self.release = asyncio.Event()

    async def identify(self, key_hash: str) -> KeyIdentity | None:
        self.identify_calls += 1
        await self.release.wait()
        return KeyIdentity(key_name="ci", role="operator") if key_hash == hash_key("good") else None

    async def any_active(self) -> bool:
        self.any_active_calls += 1
        await self.release.wait()
        if self.fail:
            raise ConnectionError("PostgreSQL is unavailable")
        return self.active


def access(keys: GatedKeys) -> Access:
    # No bootstrap keys (whatever API_KEYS says here), and answers cached for a while.
    settings = Settings().changed(security={"api_keys": {}, "key_cache_ttl_s": 60.0})
    return Access(settings, keys, TokenBuckets(rate=0, burst=1))  # rate 0: no limit


async def _together(n: int, call, keys: GatedKeys) -> list:
    tasks = [asyncio.ensure_future(call()) for _ in range(n)]
    await asyncio.sleep(0.01)  # every caller is waiting on the store now
    keys.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_concurrent_requests_share_one_any_active_lookup_then_use_the_cache() -> None:
    keys = GatedKeys(active=True)
    a = access(keys)
    assert await _together(20, a.keys_defined, keys) == [True] * 20
    assert keys.any_active_calls == 1
    assert await a.keys_defined() is True and keys.any_active_calls == 1  # cached now


async def test_concurrent_lookups_of_one_key_share_one_query_and_other_keys_get_their_own() -> None:
    keys = GatedKeys()
    a = access(keys)
    results = await _together(
        10, lambda: asyncio.gather(a.identify("good"), a.identify("guess")), keys
    )
    assert all(r == [KeyIdentity(key_name="ci", role="operator"), None] for r in results)
    assert keys.identify_calls == 2  # one per distinct key, not one per request


async def test_a_failed_lookup_fails_every_waiter_and_the_next_request_tries_again() -> None:
    keys = GatedKeys(fail=True)
    a = access(keys)
    results = await _together(5, a.keys_defined, keys)
    assert all(isinstance(r, ConnectionError) for r in results)
    keys.fail = False
    assert await a.keys_defined() is True
    assert keys.any_active_calls == 2  # nothing cached from the failure


async def test_a_cancelled_caller_leaves_the_lookup_to_the_others() -> None:
    keys = GatedKeys()
    a = access(keys)
    first = asyncio.ensure_future(a.identify("good"))
    second = asyncio.ensure_future(a.identify("good"))
    await asyncio.sleep(0.01)
    first.cancel()  # its client went away while the query ran
    keys.release.set()
    assert await second == KeyIdentity(key_name="ci", role="operator")
    assert keys.identify_calls == 1


async def test_a_lookup_started_before_forget_caches_nothing() -> None:
    keys = GatedKeys(active=False)
    a = access(keys)
    waiting = asyncio.ensure_future(a.keys_defined())
    await asyncio.sleep(0.01)
    a.forget()  # a key was created in this process while the old answer was on its way
    keys.release.set()
    assert await waiting is False  # its caller gets the answer it asked for
    keys.active = True
    assert await a.keys_defined() is True  # but the next request asks again
    assert keys.any_active_calls == 2
