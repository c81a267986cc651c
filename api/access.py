"""Who may call what: API keys with roles, checked by one middleware, and a rate per key.

Each route declares the role it needs in its ``opt`` (``opt={"role": "predictor"}``, on the
handler or its controller). A route that declares nothing needs ``reader`` for GET and HEAD and
``operator`` for any other method, so a new write endpoint is never open by accident.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from api.anonymous import is_loopback as is_loopback  # where api/ui/session.py finds it
from api.anonymous import why_not_anonymous
from api.errors import error_response
from bootstrap import Settings
from domain.keys.aggregate import KeyIdentity, hash_key, role_allows
from domain.keys.buckets import RateLimiter
from domain.keys.ports import KeyReader

PUBLIC = "public"
ANONYMOUS = "anonymous"
HEADER = "x-api-key"
_HEADER_BYTES = HEADER.encode()
# Documentation the framework serves: public like /health.
PUBLIC_PREFIXES = ("/schema", "/asyncapi.json")
LOOKUP = "key-lookup"  # the bucket of uncached key lookups, per client address
MAX_CACHED = 10_000  # valid keys (and, apart, unknown ones) kept per process; the oldest go first


def required_role(route_handler: BaseRouteHandler, method: str, path: str) -> str:
    """The role a route needs: its declared ``opt['role']``, else by method (reads: reader)."""
    if method == "OPTIONS":  # it only lists the path's methods
        return PUBLIC
    declared = route_handler.opt.get("role")
    if declared:
        return declared
    if path.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    return "reader" if method in ("GET", "HEAD") else "operator"


class Access:
    """Resolves a request's key to a name and role, with short in-process caches, and applies
    the rate limits (one token bucket per caller, shared by every API process through Redis)."""

    def __init__(self, settings: Settings, keys: KeyReader, limiter: RateLimiter) -> None:
        self.settings, self.keys, self.limiter = settings, keys, limiter
        self.ttl = max(0.0, settings.security.key_cache_ttl_s)
        # Bootstrap keys from API_KEYS, by hash, so every comparison is of equal-length digests.
        self.bootstrap = [
            (hash_key(key), KeyIdentity(key_name=name, role=role))
            for key, (name, role) in settings.security.api_keys.items()
        ]
        # Hits and misses apart: a flood of unknown keys cannot push a valid key out.
        self._hits: OrderedDict[str, tuple[float, KeyIdentity]] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._any_active: tuple[float, bool] = (-math.inf, False)
        # Lookups in flight, by what they look up: when a cached answer expires under load, the
        # requests that arrive before the database answers wait for one lookup instead of each
        # sending their own (~6 at once per process at c=32, measured).
        self._in_flight: dict[str, asyncio.Future] = {}
        self._generation = 0  # bumped by forget(): a lookup started before it caches nothing

    def forget(self) -> None:
        """Drop every cached lookup (after a key is created or revoked in this process)."""
        self._hits.clear()
        self._misses.clear()
        self._any_active = (-math.inf, False)
        self._in_flight.clear()
        self._generation += 1

    async def _shared(self, key: str, lookup: Callable[[int], Awaitable[Any]]) -> Any:
        """``lookup(generation)``, run once for all the callers asking for ``key`` meanwhile."""
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(lookup(self._generation))
            self._in_flight[key] = future
            # Retrieved here too, so a failure no caller is left to read is not logged as lost.
            future.add_done_callback(lambda f: self._done(key, f))
        # A caller that is cancelled (its client left) leaves the lookup to the others.
        return await asyncio.shield(future)

    def _done(self, key: str, future: asyncio.Future) -> None:
        if self._in_flight.get(key) is future:
            del self._in_flight[key]
        if not future.cancelled():
            future.exception()

    async def identify(self, secret: str, address: str | None = None) -> KeyIdentity | None:
        """The key's owner and role, None for an unknown or revoked key.

        A key not cached as valid first spends a token of ``address``'s lookup bucket (429 when
        it is empty), so guesses from one address reach the database at most at that rate.
        """
        digest = hash_key(secret)
        found = None
        for known, identity in self.bootstrap:
            # Compare with every bootstrap key, in constant time, without stopping at a match.
            if hmac.compare_digest(digest, known):
                found = identity
        if found is not None:
            return found
        # Stored keys are found by their SHA-256 in a unique index: the timing of that lookup
        # tells an attacker about the hash of their guess, which gives nothing about a key.
        now = time.monotonic()
        hit = self._hits.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        if address is not None:
            await self.limit(f"{LOOKUP}@{address}")
        missed = self._misses.get(digest)
        if missed is not None and missed > now:
            return None
        return await self._shared(f"key:{digest}", lambda gen: self._look_up(digest, gen))

    async def _look_up(self, digest: str, generation: int) -> KeyIdentity | None:
        """The stored key with this hash, cached (unless forget() ran meanwhile)."""
        identity = await self.keys.identify(digest)
        if generation == self._generation:
            now = time.monotonic()
            if identity is None:
                _remember(self._misses, digest, now + self.ttl)
            else:
                _remember(self._hits, digest, (now + self.ttl, identity))
        return identity

    async def keys_defined(self) -> bool:
        """Whether any key exists (API_KEYS or an active stored key)."""
        if self.bootstrap:
            return True
        until, value = self._any_active
        if until > time.monotonic():
            return value
        return await self._shared("any-active", self._look_up_any_active)

    async def _look_up_any_active(self, generation: int) -> bool:
        """Whether any stored key is active, cached (unless forget() ran meanwhile)."""
        value = await self.keys.any_active()
        if generation == self._generation:
            self._any_active = (time.monotonic() + self.ttl, value)
        return value

    async def limit(self, caller: str) -> None:
        """429 with Retry-After when ``caller`` is over its rate."""
        wait = await self.limiter.take(caller)
        if wait > 0:
            raise TooManyRequestsException(
                f"rate limit of {self.settings.security.rate_limit_per_s:g} requests/s "
                f"(burst {self.settings.security.rate_limit_burst}) exceeded for {caller!r}",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def _remember(cache: OrderedDict[str, Any], digest: str, entry: Any) -> None:
    """Keep ``entry`` as the newest of a bounded cache; the oldest goes beyond MAX_CACHED."""
    cache[digest] = entry
    cache.move_to_end(digest)
    if len(cache) > MAX_CACHED:
        cache.popitem(last=False)


def _api_key(raw: list[tuple[bytes, bytes]]) -> str | None:
    """The X-API-Key header, read from the raw headers (Litestar's Headers parses them all)."""
    for name, value in raw:
        if name == _HEADER_BYTES:
            return value.decode("latin-1")
    return None


async def authorize(scope: Scope) -> None:
    """Authenticate the X-API-Key header and authorise the routed handler's role (401, 403, 429)."""
    need = required_role(scope["route_handler"], scope["method"], scope["path"])
    if need == PUBLIC:
        return
    access: Access = scope["app"].state.access
    secret = _api_key(scope["headers"])
    client = scope.get("client")
    address = client[0] if client else "unknown"
    if secret:
        identity = await access.identify(secret, address)
        if identity is None:
            raise NotAuthorizedException("the X-API-Key header names no active key")
        await access.limit(identity.key_name)
    elif await access.keys_defined():
        if not (need == "reader" and access.settings.security.open_reads):
            raise NotAuthorizedException(
                "this endpoint needs an X-API-Key header (create one with `just create-key NAME ROLE`)"
            )
        await access.limit(f"{ANONYMOUS}@{address}")
        identity = KeyIdentity(key_name=ANONYMOUS, role="reader")
    else:
        refused = None if access.settings.security.allow_anonymous else why_not_anonymous(scope)
        if refused:
            raise NotAuthorizedException(
                f"no API key is defined, and anonymous use is only for requests from this machine "
                f"that no proxy relayed; {refused}. Create a key with `just create-key NAME admin` "
                "(or set ALLOW_ANONYMOUS=1 to serve anonymous requests from anywhere on purpose)"
            )
        # No key defined yet: local development, with every role, as before keys existed.
        identity = KeyIdentity(key_name=ANONYMOUS, role="admin")
    if not role_allows(identity.role, need):
        raise PermissionDeniedException(
            f"key {identity.key_name!r} has role {identity.role!r}; this endpoint needs {need!r}"
        )
    state = scope.setdefault("state", {})  # type: ignore[typeddict-item]  # what request.state wraps
    state["actor"], state["role"] = identity.key_name, identity.role


def access_middleware(app: ASGIApp) -> ASGIApp:
    """Check every routed HTTP request (``authorize``) before its handler runs.

    A middleware, not a Litestar guard: Litestar hands each guard call a copy of the route
    handler, which was ~40 µs of a lone /predict here. A refusal is answered in the API's error
    shape, inside the metrics middleware, so it is counted, logged and carries the ids.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await authorize(scope)
            except Exception as exc:  # 401/403/429, or a key lookup that failed (503)
                request: Request = Request(scope)
                response = error_response(request, exc)
                await response.to_asgi_response(None, request)(scope, receive, send)
                return
        await app(scope, receive, send)

    return middleware
