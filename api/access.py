"""Who may call what: API keys with roles, checked by one middleware, and a rate per key.

Each route declares the role it needs in its ``opt`` (``opt={"role": "predictor"}``, on the
handler or its controller). A route that declares nothing needs ``reader`` for GET and HEAD and
``operator`` for any other method, so a new write endpoint is never open by accident.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections import OrderedDict

from litestar import Request
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from bootstrap import Settings
from domain.keys.aggregate import KeyIdentity, hash_key, role_allows
from domain.keys.ports import KeyReader

PUBLIC = "public"
ANONYMOUS = "anonymous"
HEADER = "x-api-key"
_HEADER_BYTES = HEADER.encode()
# Documentation the framework serves: public like /health.
PUBLIC_PREFIXES = ("/schema", "/asyncapi.json")
MAX_CACHED = 10_000  # lookups kept per process; the oldest go first


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or 'localhost') only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


class TokenBuckets:
    """One token bucket per caller, in this process: ``rate`` per second, up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_callers: int = MAX_CACHED) -> None:
        self.rate, self.burst, self.max_callers = rate, max(1, burst), max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str, now: float | None = None) -> float:
        """Spend one token; 0 when allowed, else the seconds until a token is back."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1 if tokens >= 1 else tokens, now)
        if len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)  # the longest idle caller starts afresh
        return wait


class Access:
    """Resolves a request's key to a name and role, with a short in-process cache."""

    def __init__(self, settings: Settings, keys: KeyReader) -> None:
        self.settings, self.keys = settings, keys
        self.ttl = max(0.0, settings.security.key_cache_ttl_s)
        self.buckets = TokenBuckets(
            settings.security.rate_limit_per_s, settings.security.rate_limit_burst
        )
        # Bootstrap keys from API_KEYS, by hash, so every comparison is of equal-length digests.
        self.bootstrap = [
            (hash_key(key), KeyIdentity(key_name=name, role=role))
            for key, (name, role) in settings.security.api_keys.items()
        ]
        self._cache: OrderedDict[str, tuple[float, KeyIdentity | None]] = OrderedDict()
        self._any_active: tuple[float, bool] = (-math.inf, False)
        # Settings do not change while the process runs; asked on every keyless request.
        self._anonymous = settings.security.allow_anonymous or is_loopback(settings.api.host)

    def forget(self) -> None:
        """Drop every cached lookup (after a key is created or revoked in this process)."""
        self._cache.clear()
        self._any_active = (-math.inf, False)

    async def identify(self, secret: str) -> KeyIdentity | None:
        """The key's owner and role, None for an unknown or revoked key."""
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
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        identity = await self.keys.identify(digest)
        self._cache[digest] = (now + self.ttl, identity)
        self._cache.move_to_end(digest)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return identity

    async def keys_defined(self) -> bool:
        """Whether any key exists (API_KEYS or an active stored key)."""
        if self.bootstrap:
            return True
        until, value = self._any_active
        if until > time.monotonic():
            return value
        value = await self.keys.any_active()
        self._any_active = (time.monotonic() + self.ttl, value)
        return value

    def anonymous_allowed(self) -> bool:
        """With no key defined: anonymous use on a loopback address, or anywhere if allowed."""
        return self._anonymous

    def limit(self, caller: str) -> None:
        """429 with Retry-After when ``caller`` is over its rate."""
        wait = self.buckets.take(caller)
        if wait > 0:
            raise TooManyRequestsException(
                f"rate limit of {self.settings.security.rate_limit_per_s:g} requests/s "
                f"(burst {self.settings.security.rate_limit_burst}) exceeded for {caller!r}",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


async def anonymous_refusal(settings: Settings, keys: KeyReader) -> str | None:
    """Why the API must not start (no key, not loopback, not ALLOW_ANONYMOUS), or None."""
    if (
        settings.security.api_keys
        or settings.security.allow_anonymous
        or is_loopback(settings.api.host)
    ):
        return None
    if await keys.any_active():
        return None
    return (
        f"no API key is defined, so the API serves only on a loopback address, not {settings.api.host}: "
        "create a key with `just create-key NAME admin` (or set API_KEYS), or set "
        "ALLOW_ANONYMOUS=1 to serve anonymous requests on purpose"
    )


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
        identity = await access.identify(secret)
        if identity is None:
            access.limit(f"invalid-key@{address}")  # bounds guessing as well as load
            raise NotAuthorizedException("the X-API-Key header names no active key")
        access.limit(identity.key_name)
    elif await access.keys_defined():
        if not (need == "reader" and access.settings.security.open_reads):
            raise NotAuthorizedException(
                "this endpoint needs an X-API-Key header (create one with `just create-key NAME ROLE`)"
            )
        access.limit(f"{ANONYMOUS}@{address}")
        identity = KeyIdentity(key_name=ANONYMOUS, role="reader")
    elif access.anonymous_allowed():
        # No key defined yet: local development, with every role, as before keys existed.
        identity = KeyIdentity(key_name=ANONYMOUS, role="admin")
    else:
        raise NotAuthorizedException(
            "no API key is defined; create one with `just create-key NAME admin`"
        )
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
