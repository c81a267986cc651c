"""``python -m api``: serve the API on HOST:PORT with ``API_WORKERS`` processes.

One process runs uvicorn in place. Several processes each bind their own listening socket
to the same port with ``SO_REUSEPORT``, so the kernel spreads connections evenly among them
(one shared socket, as uvicorn's ``--workers`` uses, let one process take 31 of 32 keep-alive
connections in a measurement here). Each process has its own event loop, batcher and model
cache, follows ``registry.events`` for hot swap, and runs a relay (one leads at a time). This
process supervises them: it restarts one that dies and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import uvicorn

from settings import available_cores, get_settings, settings_or_exit

CHILD_FLAG = "--serve-one"
PID_HEADER = b"x-server-pid"
# Set by the supervisor for each process: the shared activity file and this process's slot.
# Internal, from process to process, not configuration: so not in settings.
ACTIVITY_ENV, SLOT_ENV = "API_ACTIVITY_FILE", "API_ACTIVITY_SLOT"


async def _preflight() -> None:
    """Start or reach the servers, so an outage is one clear line, not a trace (start-up migrates)."""
    import bootstrap
    from domain.errors import ServiceUnavailable

    platform = await bootstrap.build_platform(get_settings(), run_migrations=False)
    try:
        await platform.queries.ping()
        from api.access import anonymous_refusal

        refusal = await anonymous_refusal(get_settings(), platform.keys)
        if refusal:  # one line, before anything listens
            print(f"error: {refusal}", file=sys.stderr, flush=True)
            sys.exit(2)
        try:
            await platform.ops.ping_redis()
        except ServiceUnavailable as exc:
            # Serving and the registry work without Redis; publishing and hot swap catch up later.
            print(f"warning: redis is unreachable ({exc}); starting anyway", flush=True)
    finally:
        await platform.aclose()


def _check_settings(workers: int, device: str) -> str | None:
    """A message naming the bad setting, or None."""
    from ml.device import DeviceError, resolve_device

    if workers < 1:
        return f"API_WORKERS must be at least 1, not {workers}"
    try:
        resolve_device(device)
    except DeviceError as exc:
        return str(exc)
    return None


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


def app_factory():
    """The Litestar app of this process, its responses marked with its pid."""
    from api.app import create_app
    from observability.exposition import withdraw_target

    app = create_app()
    s = get_settings()
    target = _announce_metrics(s.api.host, s.api.port, own_port=s.api.workers > 1)
    # On shutdown, not after server.run(): uvicorn re-raises SIGTERM once it has stopped.
    app.on_shutdown.append(lambda: withdraw_target(target))
    return with_pid_header(app)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def serve(reuse_port: bool) -> None:
    """Run one API process (on its own SO_REUSEPORT socket when there are several)."""
    s = get_settings()
    if os.environ.get(ACTIVITY_ENV):
        from ml.threads import PEERS

        PEERS.attach(os.environ[ACTIVITY_ENV], int(os.environ.get(SLOT_ENV, "0")))
    config = uvicorn.Config(
        app_factory,
        factory=True,
        host=s.api.host,
        port=s.api.port,
        log_level="warning",
        access_log=False,
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
    )
    server = uvicorn_server(config)
    _run(server, s.api.host, s.api.port, config.backlog, reuse_port)


def _announce_metrics(host: str, port: int, *, own_port: bool):
    """Announce this process to `just monitor`; one of several also serves /metrics on its own
    free port, since a scrape of the shared port reaches whichever process the kernel picks."""
    from observability import exposition

    if own_port:
        port = exposition.serve_metrics(host, 0)
        print(
            f"API process {os.getpid()}: metrics also at http://{host}:{port}/metrics",
            file=sys.stderr,
            flush=True,
        )
    address = exposition.scrape_address(host, port)
    return exposition.announce_target(
        exposition.targets_dir(get_settings().files.state_dir), "platform-api", address
    )


def _run(server: uvicorn.Server, host: str, port: int, backlog: int, reuse_port: bool) -> None:
    if not reuse_port:
        server.run()
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    server.run(sockets=[sock])


def _child_env(workers: int) -> dict[str, str]:
    """Split the cores among the processes unless TORCH_THREADS / TORCH_BATCH_THREADS are set;
    a lone request may use all of them while the other processes are idle (ml.threads.PEERS)."""
    env = dict(os.environ)
    env.setdefault("TORCH_IDLE_THREADS", env.get("TORCH_THREADS") or str(available_cores()))
    share = max(1, available_cores() // workers)
    env.setdefault("TORCH_THREADS", str(share))
    env.setdefault("TORCH_BATCH_THREADS", str(max(1, share - 1)))
    return env


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _activity_file(workers: int) -> str:
    """A zeroed file of one 8-byte slot per process, in memory (/dev/shm) where there is one."""
    import tempfile

    shm = "/dev/shm"  # noqa: S108 - mkstemp below creates the file exclusively, mode 0600
    folder = shm if os.path.isdir(shm) else None
    fd, path = tempfile.mkstemp(prefix="api-activity-", dir=folder)
    os.ftruncate(fd, 8 * workers)
    os.close(fd)
    return path


def supervise(workers: int) -> int:
    """Start ``workers`` serving processes, restart any that die, stop them all on a signal."""
    s = get_settings()
    if not _port_is_free(s.api.host, s.api.port):
        print(f"error: cannot start the API: {s.api.host}:{s.api.port} is in use", file=sys.stderr)
        return 3
    env = _child_env(workers)
    activity = _activity_file(workers)
    cmd = [sys.executable, "-m", "api", CHILD_FLAG]

    def start(slot: int) -> subprocess.Popen:
        return subprocess.Popen(cmd, env={**env, ACTIVITY_ENV: activity, SLOT_ENV: str(slot)})

    procs = [start(i) for i in range(workers)]
    started = [time.monotonic()] * workers
    quick_deaths = 0
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.poll() is None or stopping:
                    continue
                # A process that dies right after starting will die again: give up after three.
                quick_deaths = quick_deaths + 1 if time.monotonic() - started[i] < 10 else 0
                if quick_deaths >= 3:
                    print("error: API processes keep exiting at start-up", file=sys.stderr)
                    return 1
                print(
                    f"warning: API process {proc.pid} exited ({proc.returncode}); restarting",
                    file=sys.stderr,
                )
                procs[i], started[i] = start(i), time.monotonic()
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        os.unlink(activity)


def main() -> None:
    """Check the settings and the servers, then serve with one or several processes."""
    import asyncio

    s = settings_or_exit()
    if CHILD_FLAG in sys.argv[1:]:
        serve(reuse_port=True)
        return
    problem = _check_settings(s.api.workers, s.serving.device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(_preflight())
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        print(f"error: cannot start the API: {type(exc).__name__}: {first}", file=sys.stderr)
        sys.exit(3)
    if s.api.workers == 1:
        serve(reuse_port=False)
        return
    sys.exit(supervise(s.api.workers))


if __name__ == "__main__":
    main()
