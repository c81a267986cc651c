"""The supervisor of several API processes on one port.

Each process binds its own socket to the port with ``SO_REUSEPORT`` (api.listening), has its
own event loop, batcher and model cache, follows ``registry.events`` for hot swap, and runs a
relay (one leads at a time). The supervisor gives each a slot in one shared activity file
(``ml.threads.PEERS``), restarts one that dies, and stops them all on SIGTERM or SIGINT.

It serves nothing, so it imports neither torch nor the app (10 MB PSS instead of 368): the
checks before start-up (settings, the port, the servers) and the schema's migration run
in a short-lived child, ``python -m api --check-only``, and only the serving children import
what serving needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings reach api through the composition root
    from bootstrap import Settings

CHILD_FLAG = "--serve-one"  # python -m api's flag for a supervised process
CHECK_FLAG = "--check-only"  # ... and for the checks before the supervisor starts any
# Set by the supervisor for each process: the shared activity file and this process's slot.
# Internal, from process to process, not configuration: so not in settings.
ACTIVITY_ENV, SLOT_ENV = "API_ACTIVITY_FILE", "API_ACTIVITY_SLOT"
MIGRATED_ENV = "API_SCHEMA_MIGRATED"  # the check migrated: the serving processes skip alembic


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
    """Check in a child (api.startup.checks), then start ``workers`` serving processes, restart
    any that die, stop them all on a signal; the exit status (the check's when it refused)."""
    checked = subprocess.run([sys.executable, "-m", "api", CHECK_FLAG], check=False).returncode
    if checked:  # it printed why; one killed by a signal exits 128 + its number, as a shell says
        return checked if checked > 0 else 128 - checked
    env = child_env(workers, cores)
    activity = new_activity_file(workers)
    cmd = [sys.executable, "-m", "api", CHILD_FLAG]

    def start(slot: int) -> subprocess.Popen:
        slot_env = {ACTIVITY_ENV: activity, SLOT_ENV: str(slot), MIGRATED_ENV: "1"}
        return subprocess.Popen(cmd, env={**env, **slot_env})

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


def new_activity_file(processes: int) -> str:
    """A zeroed file of one 8-byte slot per process (``ml.threads.PeerActivity.attach``), in
    memory (/dev/shm) where there is one; whoever creates it removes it."""
    shm = "/dev/shm"  # noqa: S108 - mkstemp below creates the file exclusively, mode 0600
    folder = shm if os.path.isdir(shm) else None
    fd, path = tempfile.mkstemp(prefix="api-activity-", dir=folder)
    os.ftruncate(fd, 8 * processes)
    os.close(fd)
    return path


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
