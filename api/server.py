"""One API process: uvicorn serving the Litestar app, every response naming its process, the
requests in progress visible to the batcher, and the process announced to `just monitor`."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

import uvicorn

from api.listening import reuse_port_socket
from api.supervisor import ACTIVITY_ENV, SLOT_ENV

if TYPE_CHECKING:  # the settings reach api through the composition root
    from bootstrap import Settings

PID_HEADER = b"x-server-pid"


def with_pid_header(app):
    """Wrap an ASGI app: every HTTP response names its process."""
    pid = str(os.getpid()).encode()

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_pid(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (PID_HEADER, pid)]
            await send(message)

        return await app(scope, receive, send_with_pid)

    return wrapped


def uvicorn_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server whose requests in progress the batcher reads (``ml.batcher.IN_FLIGHT``).

    uvicorn adds each request's task to ``server_state.tasks`` when the request's headers are
    parsed, before the task first runs: so a request knows whether it is alone, and when it is
    the batcher may run it inline instead of paying two thread hand-offs.
    """
    from ml.batcher import IN_FLIGHT

    server = uvicorn.Server(config)
    IN_FLIGHT.follow(server.server_state.tasks)
    return server


def app_factory(s: Settings):
    """The Litestar app of this process, its responses marked with its pid."""
    from api.app import create_app
    from observability.exposition import withdraw_target

    app = create_app()
    target = _announce_metrics(s, own_port=s.api.workers > 1)
    # On shutdown, not after server.run(): uvicorn re-raises SIGTERM once it has stopped.
    app.on_shutdown.append(lambda: withdraw_target(target))
    return with_pid_header(app)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def serve(s: Settings, reuse_port: bool) -> None:
    """Run one API process (on its own SO_REUSEPORT socket when there are several)."""
    if os.environ.get(ACTIVITY_ENV):
        from ml.threads import PEERS

        PEERS.attach(os.environ[ACTIVITY_ENV], int(os.environ.get(SLOT_ENV, "0")))
    config = uvicorn.Config(
        functools.partial(app_factory, s),
        factory=True,
        host=s.api.host,
        port=s.api.port,
        log_level="warning",
        access_log=False,
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
    )
    server = uvicorn_server(config)
    if not reuse_port:
        server.run()
        return
    server.run(sockets=[reuse_port_socket(s.api.host, s.api.port, config.backlog)])


def _announce_metrics(s: Settings, *, own_port: bool):
    """Announce this process to `just monitor`; one of several also serves /metrics on its own
    free port, since a scrape of the shared port reaches whichever process the kernel picks."""
    from observability import exposition

    host, port = s.api.host, s.api.port
    if own_port:
        port = exposition.serve_metrics(host, 0)
        print(
            f"API process {os.getpid()}: metrics also at http://{host}:{port}/metrics",
            file=sys.stderr,
            flush=True,
        )
    address = exposition.scrape_address(host, port)
    return exposition.announce_target(
        exposition.targets_dir(s.files.state_dir), "platform-api", address
    )
