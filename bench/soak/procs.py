"""The soak's processes: the API (two processes under its supervisor) and two workers, started
on the same servers the way `just serve` and `just worker` start them, and sampled each minute."""

from __future__ import annotations

import subprocess
import sys

import psutil

from cli.processes import ROOT, child_env, free_port, start_worker, stop_process, wait_healthy

API_PROCESSES = 2
WORKERS = 2
START_S = 600  # a start-up (torch and the app imported by three processes) on a busy machine


class Fleet:
    """``python -m api`` (API_PROCESSES) and WORKERS × ``python -m consumers``."""

    def __init__(self, **env: str) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen: dict[str, subprocess.Popen] = {}
        self.watched: dict[str, psutil.Process] = {}

    async def start(self) -> None:
        """The API first (it migrates the schema), then the workers; until all answer."""
        env = child_env(
            HOST="127.0.0.1", PORT=str(self.port), API_WORKERS=str(API_PROCESSES), **self.env
        )
        cmd = [sys.executable, "-m", "api"]
        self.popen["api"] = subprocess.Popen(cmd, cwd=ROOT, env=env)  # noqa: ASYNC220
        await wait_healthy(self.url, self.popen["api"], API_PROCESSES, timeout_s=START_S)
        for i in range(1, WORKERS + 1):
            self.popen[f"worker{i}"] = start_worker(**self.env)
        for name, proc in self.popen.items():
            self._watch(name, proc.pid)

    def _watch(self, name: str, pid: int) -> None:
        """The process and its children (the API's serving processes), each named."""
        root = psutil.Process(pid)
        self.watched[name] = root
        children = sorted(root.children(recursive=True), key=lambda p: p.pid)
        for i, child in enumerate(children, start=1):
            self.watched[f"{name}.{i}"] = child

    def sample(self) -> tuple[dict[str, tuple[int, int]], list[str]]:
        """Each watched process's (RSS bytes, open fds), and the names of those that exited."""
        out, gone = {}, []
        for name, proc in self.watched.items():
            try:
                with proc.oneshot():
                    out[name] = (proc.memory_info().rss, proc.num_fds())
            except psutil.Error:
                gone.append(name)
        return out, gone

    def pids(self) -> dict[str, int]:
        """Each watched process's pid."""
        return {name: p.pid for name, p in self.watched.items()}

    def stop(self) -> None:
        """Workers first (they finish their shard), then the API."""
        for name in sorted(self.popen, key=lambda n: n == "api"):
            stop_process(self.popen.pop(name))
