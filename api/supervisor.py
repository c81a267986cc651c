"""The supervisor of several API processes on one port.

Each process binds its own socket to the port with ``SO_REUSEPORT`` (api.listening), has its
own event loop, batcher and model cache, follows ``registry.events`` for hot swap, and runs a
relay (one leads at a time). The supervisor gives each a slot in one shared activity file
(``ml.threads.PEERS``), restarts one that dies, and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from api.listening import in_use, port_is_free
from api.server import ACTIVITY_ENV, SLOT_ENV

if TYPE_CHECKING:  # the settings reach api through the composition root
    from bootstrap import Settings

CHILD_FLAG = "--serve-one"  # python -m api's flag for a supervised process


def child_env(workers: int, cores: int) -> dict[str, str]:
    """Split the cores among the processes unless TORCH_THREADS / TORCH_BATCH_THREADS are set;
    a lone request may use all of them while the other processes are idle (ml.threads.PEERS)."""
    env = dict(os.environ)
    env.setdefault("TORCH_IDLE_THREADS", env.get("TORCH_THREADS") or str(cores))
    share = max(1, cores // workers)
    env.setdefault("TORCH_THREADS", str(share))
    env.setdefault("TORCH_BATCH_THREADS", str(max(1, share - 1)))
    return env


def supervise(s: Settings, workers: int, cores: int) -> int:
    """Start ``workers`` serving processes, restart any that die, stop them all on a signal."""
    from ml.threads import new_activity_file  # torch: not for `python -m api --help`

    if not port_is_free(s.api.host, s.api.port):
        print(f"error: cannot start the API: {in_use(s.api.host, s.api.port)}", file=sys.stderr)
        return 3
    env = child_env(workers, cores)
    activity = new_activity_file(workers)
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
        _stop_all(procs)
        os.unlink(activity)


def _stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process still running; kill those not gone within 30 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
