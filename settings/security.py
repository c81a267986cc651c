"""Who may do what, how often, and the secret of the audit chain."""

from __future__ import annotations

import os
from dataclasses import dataclass

from settings.parse import choice, flag, number, read_api_keys, setting, text, whole


@dataclass(frozen=True)
class SecuritySettings:
    """Keys, roles, rate limits, the audit chain's key ([security](docs/security.md))."""

    api_keys: dict[str, tuple[str, str]] = setting(
        "API_KEYS",
        lambda: read_api_keys(os.environ.get("API_KEYS", "")),
        "unset",
        "Bootstrap keys beside those of `just create-key`: `name:key:role,...` (key of 16+ chars; "
        "`name:key` means `operator`); the name is the actor of the key's events.",
        secret=True,
    )
    open_reads: bool = flag(
        "OPEN_READS", False, "Requests without a key may use the endpoints that need only `reader`."
    )
    allow_anonymous: bool = flag(
        "ALLOW_ANONYMOUS",
        False,
        "With no key defined, serve anonymous requests from any peer, proxied or not, and on "
        "any address (else only unrelayed loopback requests, and no start beyond loopback).",
    )
    key_cache_ttl_s: float = number(
        "KEY_CACHE_TTL_S",
        5.0,
        "How long a process reuses a key lookup: a revoked key works this long in another process.",
    )
    rate_limit_per_s: float = number(
        "RATE_LIMIT_PER_S",
        200.0,
        "Each key's (or address's) requests/s, shared by every API process through Redis, then "
        "429 with `Retry-After`; 0: no limit.",
    )
    rate_limit_burst: int = whole(
        "RATE_LIMIT_BURST", 400, "The token bucket's size: requests allowed in a burst."
    )
    console_idle_s: float = number(
        "CONSOLE_IDLE_S",
        1800.0,
        "The server ends a console session after this long without a request.",
    )
    console_max_s: float = number(
        "CONSOLE_MAX_S",
        28800.0,
        "The server ends a console session this long after its login, however busy.",
    )
    console_secure_cookie: str = choice(
        "CONSOLE_SECURE_COOKIE",
        "auto",
        ("auto", "always", "never"),
        "`auto`: the session cookie is `__Host-` and `Secure` unless `HOST` is loopback and the "
        "request came over http; `always` or `never` force it ([console](docs/console.md)).",
    )
    cli_actor: str | None = text(
        "ACTOR",
        "The CLI records its events as `cli:ACTOR (os USER)` instead of `cli:USER` (automation); "
        "like the OS user, it is a label, not an authenticated identity.",
    )
    audit_hmac_key: bytes | None = setting(
        "AUDIT_HMAC_KEY",
        lambda: os.environ.get("AUDIT_HMAC_KEY", "").encode() or None,
        "unset: SHA-256 chain",
        "Each new `event_log` row's hash is an HMAC under this key, a secret the database never "
        "holds ([audit](docs/audit.md)).",
        secret=True,
    )
