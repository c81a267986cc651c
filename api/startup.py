"""The start of ``python -m api``: refuse bad settings, a taken port and unreachable servers with
one line, then serve in this process (``API_WORKERS=1``); with several processes the supervisor
runs the same checks in a child (``--check-only``), so that it never imports what they need."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from api.listening import in_use, port_taken
from api.server import serve

if TYPE_CHECKING:  # the settings reach api through the composition root
    from bootstrap import Settings


def check_settings(workers: int, device: str) -> str | None:
    """A message naming the bad setting, or None."""
    from ml.device import DeviceError, resolve_device

    if workers < 1:
        return f"API_WORKERS must be at least 1, not {workers}"
    try:
        resolve_device(device)
    except DeviceError as exc:
        return str(exc)
    return None


async def preflight(s: Settings, migrate: bool = False) -> None:
    """Start or reach the servers, so an outage is one clear line, not a trace (start-up migrates,
    or, under the supervisor, its check: ``migrate``)."""
    from bootstrap.api import reach_servers
    from domain.errors import ServiceUnavailable

    async with reach_servers(s, migrate=migrate) as servers:
        await servers.queries.ping()
        from api.anonymous import anonymous_refusal

        refusal = await anonymous_refusal(s, servers.keys)
        if refusal:  # one line, before anything listens
            print(f"error: {refusal}", file=sys.stderr, flush=True)
            sys.exit(2)
        try:
            await servers.ops.ping_redis()
        except ServiceUnavailable as exc:
            # Serving and the registry work without Redis; publishing and hot swap catch up later.
            print(f"warning: redis is unreachable ({exc}); starting anyway", flush=True)


def checks(s: Settings, migrate: bool = False) -> int:
    """Check the settings and the port, reach the servers (and migrate them when ``migrate``);
    0, or the exit status after one line."""
    problem = check_settings(s.api.workers, s.serving.device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if port_taken(s.api.host, s.api.port):  # before the servers: seconds, not a trace
        print(f"error: cannot start the API: {in_use(s.api.host, s.api.port)}", file=sys.stderr)
        return 3
    try:
        asyncio.run(preflight(s, migrate))
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        print(f"error: cannot start the API: {type(exc).__name__}: {first}", file=sys.stderr)
        return 3
    return 0


def start(s: Settings) -> int:
    """Check, then serve in this process; the exit status."""
    refused = checks(s)
    if refused:
        return refused
    serve(s, reuse_port=False)
    return 0
