"""API keys and access rules: the key aggregate, its handlers on fakes, buckets, cursors, settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.access import required_role
from api.anonymous import command_line_hosts, is_loopback, why_not_anonymous
from domain.errors import Conflict, InvalidInput, NotFound
from domain.keys.aggregate import hash_key, role_allows
from domain.keys.buckets import TokenBuckets
from domain.keys.commands import CreateApiKey, RevokeApiKey
from domain.keys.handlers import create_api_key, new_secret, revoke_api_key
from domain.keys.ports import KeyPorts
from domain.paging.cursors import decode_cursor, encode_cursor, page_of
from events.base import EventMetadata
from events.codec import decode_event, encode_event
from events.keys import ApiKeyCreated, ApiKeyRevoked, key_stream_id
from settings.parse import read_api_keys
from tests.unit.fakes import FakeUnitOfWorkFactory

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="root")


async def test_create_stores_only_the_hash_and_returns_the_key_once() -> None:
    uow = FakeUnitOfWorkFactory()
    result = await create_api_key(
        CreateApiKey(key_name="ci-bot", role="operator", reason="for CI", metadata=META),
        KeyPorts(uow=uow, new_secret=new_secret),
    )
    assert result.secret and result.secret.startswith("iep_") and len(result.secret) >= 40
    (event,) = uow.db.events(key_stream_id("ci-bot"))
    assert isinstance(event, ApiKeyCreated)
    assert (
        event.key_hash == hash_key(result.secret)
        and result.secret not in encode_event(event).decode()
    )
    assert uow.db.log[0].metadata.actor == "root"
    assert result.state.active and result.state.role == "operator"


async def test_a_second_key_for_a_live_name_is_a_conflict_and_revoke_is_idempotent() -> None:
    uow = FakeUnitOfWorkFactory()
    await create_api_key(
        CreateApiKey(key_name="alice", role="reader", reason=None, metadata=META),
        KeyPorts(uow=uow, new_secret=new_secret),
    )
    with pytest.raises(Conflict):
        await create_api_key(
            CreateApiKey(key_name="alice", role="admin", reason=None, metadata=META),
            KeyPorts(uow=uow, new_secret=new_secret),
        )
    first = await revoke_api_key(
        RevokeApiKey(key_name="alice", reason="left", metadata=META),
        KeyPorts(uow=uow, new_secret=new_secret),
    )
    again = await revoke_api_key(
        RevokeApiKey(key_name="alice", reason=None, metadata=META),
        KeyPorts(uow=uow, new_secret=new_secret),
    )
    assert first.changed and not again.changed and not again.state.active
    assert [type(e) for e in uow.db.events()] == [ApiKeyCreated, ApiKeyRevoked]
    # After a revocation the name may get a new key, with a new hash.
    renewed = await create_api_key(
        CreateApiKey(key_name="alice", role="admin", reason=None, metadata=META),
        KeyPorts(uow=uow, new_secret=new_secret),
    )
    assert renewed.state.active and renewed.state.role == "admin"
    assert renewed.state.key_hash != uow.db.events()[0].key_hash  # type: ignore[attr-defined]


async def test_bad_names_roles_and_unknown_keys_are_refused() -> None:
    uow = FakeUnitOfWorkFactory()
    for name, role, error in [
        ("Alice", "reader", InvalidInput),
        ("", "reader", InvalidInput),
        ("a" * 65, "reader", InvalidInput),
        ("anonymous", "admin", InvalidInput),
        ("bob", "root", InvalidInput),
        ("bob", "", InvalidInput),
    ]:
        with pytest.raises(error):
            await create_api_key(
                CreateApiKey(key_name=name, role=role, reason=None, metadata=META),
                KeyPorts(uow=uow, new_secret=new_secret),
            )
    with pytest.raises(NotFound):
        await revoke_api_key(
            RevokeApiKey(key_name="nobody", reason=None, metadata=META),
            KeyPorts(uow=uow, new_secret=new_secret),
        )
    assert uow.db.log == []


async def test_the_last_active_admin_key_goes_only_when_forced_with_a_reason() -> None:
    uow = FakeUnitOfWorkFactory()
    ports = KeyPorts(uow=uow, new_secret=new_secret)
    for name, role in (("root", "admin"), ("ops", "operator"), ("second", "admin")):
        await create_api_key(CreateApiKey(key_name=name, role=role, metadata=META), ports)
    await revoke_api_key(RevokeApiKey(key_name="second", metadata=META), ports)  # root remains
    await revoke_api_key(RevokeApiKey(key_name="ops", metadata=META), ports)  # not an admin
    with pytest.raises(Conflict, match=r"'root' is the last active admin key.*--force"):
        await revoke_api_key(RevokeApiKey(key_name="root", metadata=META), ports)
    with pytest.raises(InvalidInput, match="--force needs a --reason"):
        await revoke_api_key(RevokeApiKey(key_name="root", force=True, metadata=META), ports)
    forced = await revoke_api_key(
        RevokeApiKey(key_name="root", force=True, reason="handing over to SSO", metadata=META),
        ports,
    )
    assert forced.changed and not forced.state.active
    assert uow.db.log[-1].event == ApiKeyRevoked(key_name="root", reason="handing over to SSO")


def test_key_events_round_trip_on_the_access_stream() -> None:
    event = ApiKeyCreated(key_name="k", role="reader", key_hash="0" * 64)
    assert decode_event("ApiKeyCreated", encode_event(event)) == event
    assert event.area == "access" and ApiKeyRevoked.area == "access"


def test_roles_are_ordered_lowest_first() -> None:
    assert role_allows("admin", "reader") and role_allows("operator", "predictor")
    assert not role_allows("predictor", "operator") and not role_allows("reader", "predictor")
    assert role_allows("reader", "reader")


def test_secrets_are_random_and_long() -> None:
    keys = {new_secret() for _ in range(100)}
    assert len(keys) == 100 and min(len(k) for k in keys) >= 40


def test_token_bucket_allows_a_burst_then_asks_to_wait() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.spend("k", now=10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.spend("k", now=10.0)
    assert wait == pytest.approx(0.5)
    assert buckets.spend("other", now=10.0) == 0.0  # each caller has its own bucket
    assert buckets.spend("k", now=10.6) == 0.0  # a token came back after 1/rate seconds
    assert TokenBuckets(rate=0, burst=1).spend("k") == 0.0  # 0 turns the limit off


def test_token_buckets_forget_the_longest_idle_caller_beyond_the_bound() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_callers=2)
    for caller in ("a", "b", "c"):
        buckets.spend(caller, now=0.0)
    assert buckets.spend("a", now=0.0) == 0.0  # 'a' was dropped, so it starts with a full bucket
    assert buckets.spend("c", now=0.0) > 0


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert decode_cursor(encode_cursor("m", at, 7), str, datetime, int) == ("m", at, 7)
    for bad in [
        "%%",
        "x" * 600,
        encode_cursor("m"),
        encode_cursor(1, at, 7),
        encode_cursor("m", "x", 7),
        encode_cursor("m", at, -1),
        encode_cursor("m", at, True),
        encode_cursor("m\x00", at, 1),
    ]:
        with pytest.raises(InvalidInput, match="cursor"):
            decode_cursor(bad, str, datetime, int)
    rows = list(range(5))
    assert page_of(rows, 5, lambda r: (r,)) == (rows, None)
    page, cursor = page_of(rows, 3, lambda r: (r,))
    assert page == [0, 1, 2] and decode_cursor(cursor, int) == (2,)


def test_api_keys_setting_has_a_role_per_key() -> None:
    keys = read_api_keys(
        "alice:aaaaaaaaaaaaaaaa1:admin, bob:bbbbbbbbbbbbbbbb2:reader,old:cccccccccccccccc3"
    )
    assert keys == {
        "aaaaaaaaaaaaaaaa1": ("alice", "admin"),
        "bbbbbbbbbbbbbbbb2": ("bob", "reader"),
        "cccccccccccccccc3": ("old", "operator"),  # the old name:key format keeps working
    }
    for bad in [
        "alice",
        "alice:short:admin",
        "alice:aaaaaaaaaaaaaaaa:root",
        ":aaaaaaaaaaaaaaaa:admin",
        "a:b:c:d",
    ]:
        with pytest.raises(ValueError, match="API_KEYS"):
            read_api_keys(bad)


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com", ""]))  # noqa: S104


def test_a_keyless_request_is_anonymous_only_from_loopback_with_no_proxy_header() -> None:
    def scope(peer: str | None, *headers: bytes) -> dict:
        return {"client": (peer, 5000) if peer else None, "headers": [(h, b"x") for h in headers]}

    assert why_not_anonymous(scope("127.0.0.1")) is None
    assert why_not_anonymous(scope("::1", b"accept")) is None
    assert "from 10.0.0.2" in why_not_anonymous(scope("10.0.0.2"))
    assert "unknown address" in why_not_anonymous(scope(None))
    for header in (b"forwarded", b"x-forwarded-for", b"x-real-ip"):
        assert header.decode() in why_not_anonymous(scope("127.0.0.1", header))


def test_the_address_an_asgi_server_binds_is_read_from_its_command_line() -> None:
    uvicorn = "/venv/bin/uvicorn"
    anywhere = "0.0.0.0"  # noqa: S104
    assert command_line_hosts([uvicorn, "--factory", "a:f", "--host", anywhere]) == [anywhere]
    assert command_line_hosts(["/x/uvicorn/__main__.py", "--host=::"]) == ["::"]
    assert command_line_hosts(["gunicorn", "-b", "[::]:80", "--bind", "unix:/s", "-b", "h:1"]) == [
        "::",
        "h",
    ]
    assert command_line_hosts(["/venv/bin/pytest", "--host", anywhere]) == []  # not a server
    assert command_line_hosts([]) == []


def test_routes_need_reader_to_read_and_operator_to_write_unless_they_declare() -> None:
    class Handler:
        def __init__(self, opt: dict) -> None:
            self.opt = opt

    assert required_role(Handler({}), "GET", "/models") == "reader"
    assert required_role(Handler({}), "POST", "/anything/new") == "operator"
    assert required_role(Handler({}), "DELETE", "/x") == "operator"
    assert required_role(Handler({"role": "predictor"}), "POST", "/predict") == "predictor"
    assert required_role(Handler({}), "GET", "/schema/openapi.json") == "public"
