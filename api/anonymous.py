"""When a request without a key may act (with no key defined at all), and when the API must not
start: decided from the request and from where the app listens, never from the settings alone.

A keyless request is served only from a loopback peer that no proxy relayed: a reverse proxy on
the same host connects from 127.0.0.1 too, but it adds a forwarding header naming the real
client. ``ALLOW_ANONYMOUS=1`` opens anonymous use to every peer, on purpose.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from litestar.types import Scope

from domain.keys.ports import KeyReader

if TYPE_CHECKING:  # the settings reach api through the composition root
    from bootstrap import Settings

# Headers a proxy adds: their presence means the peer address is not the client's.
FORWARDING = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
# ASGI servers whose command line may name the address they listen on, and how.
SERVERS = ("uvicorn", "gunicorn", "hypercorn")
HOST_FLAGS = ("--host", "--bind", "-b")


class StartRefused(RuntimeError):
    """The app will not serve: no key is defined and it listens beyond this machine."""


# Asked on every keyless request with the peer's address; parsing it was ~2% of a loop's time.
@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or 'localhost') only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def why_not_anonymous(scope: Scope) -> str | None:
    """None when a keyless request may act (a loopback peer, not relayed), else the reason."""
    client = scope.get("client")
    if not client or not is_loopback(client[0]):
        peer = client[0] if client else "an unknown address"
        return f"this request comes from {peer}, not from this machine"
    for name, _ in scope["headers"]:
        if name in FORWARDING:
            return f"this request carries a {name.decode()} header: a proxy relayed it"
    return None


def command_line_hosts(argv: Sequence[str]) -> list[str]:
    """The addresses an ASGI server's command line binds (``uvicorn --host 0.0.0.0``), if any."""
    if not argv or not any(
        name in os.path.basename(argv[0]) or f"{name}{os.sep}" in argv[0] for name in SERVERS
    ):
        return []
    values = []
    for i, arg in enumerate(argv):
        for flag in HOST_FLAGS:
            if arg == flag and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(f"{flag}="):
                values.append(arg.partition("=")[2])
    hosts = []
    for value in values:
        if value.startswith(("unix:", "fd://")):
            continue  # a socket file or an inherited descriptor: not a network address
        if value.startswith("["):  # [::]:8000
            hosts.append(value[1 : value.find("]")])
        elif value.count(":") == 1:  # 0.0.0.0:8000, gunicorn's --bind
            hosts.append(value.partition(":")[0])
        else:
            hosts.append(value)
    return hosts


def listening_hosts(settings: Settings, argv: Sequence[str] | None = None) -> list[str]:
    """Where this process serves: HOST, and any address its server's command line names."""
    return [settings.api.host, *command_line_hosts(sys.argv if argv is None else argv)]


async def anonymous_refusal(
    settings: Settings, keys: KeyReader, hosts: Sequence[str] | None = None
) -> str | None:
    """Why the API must not start (no key, listening beyond loopback, not ALLOW_ANONYMOUS)."""
    exposed = [h for h in (hosts or [settings.api.host]) if not is_loopback(h)]
    if settings.security.api_keys or settings.security.allow_anonymous or not exposed:
        return None
    if await keys.any_active():
        return None
    return (
        f"no API key is defined, so the API serves only on a loopback address, not {exposed[0]}: "
        "create a key with `just create-key NAME admin` (or set API_KEYS), or set "
        "ALLOW_ANONYMOUS=1 to serve anonymous requests on purpose"
    )
