"""Memory of processes as a cluster pays for it: PSS, RSS and USS from /proc/PID/smaps_rollup.

PSS (proportional set size) counts each page shared by n processes as 1/n of a page in each,
so the PSS of every process on the machine sums to the memory they use. USS (the private
pages) is what stopping the process would free. Linux only; stdlib only, so any benchmark can
call it without importing what it measures.

    from bench.process_memory import pss_mb, tree_pss
    pss_mb(pid)       # float, MB (10**6 bytes)
    tree_pss(pid)     # [{"pid", "role", "pss_mb", "rss_mb", "uss_mb", "torch"}] for pid + children
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

MB = 1_000_000


def _rollup(pid: int) -> dict[str, int]:
    """smaps_rollup's fields in bytes (its figures are kB)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024
    return fields


def pss_mb(pid: int) -> float:
    """The proportional set size of ``pid`` in MB."""
    return _rollup(pid)["Pss"] / MB


def memory_mb(pid: int) -> dict[str, float]:
    """PSS, RSS and USS (private clean + dirty) of ``pid`` in MB."""
    f = _rollup(pid)
    uss = f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
    return {
        "pss_mb": round(f["Pss"] / MB, 1),
        "rss_mb": round(f["Rss"] / MB, 1),
        "uss_mb": round(uss / MB, 1),
    }


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's, from /proc/PID/task/*/children)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(set(kids))


def parent(pid: int) -> int:
    """The parent of ``pid`` (to find a supervisor from a pid that an API response names)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # after the command, which may hold spaces


def imports_torch(pid: int) -> bool:
    """Whether ``pid`` has libtorch mapped, i.e. has imported torch."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def tree_pss(pid: int) -> list[dict]:
    """``pid`` and its direct children: a root with children is the ``supervisor`` and they are
    ``serving``; a root without children (``API_WORKERS=1``) is ``serving`` itself."""
    kids = children(pid)
    rows = []
    for p, role in [(pid, "supervisor" if kids else "serving"), *((k, "serving") for k in kids)]:
        try:
            rows.append({"pid": p, "role": role, **memory_mb(p), "torch": imports_torch(p)})
        except OSError:  # exited between the listing and the read
            continue
    return rows


def torch_import_mb(python: str = sys.executable, settle_s: float = 1.0) -> dict[str, float]:
    """PSS, RSS and USS of a bare ``python -c "import torch"`` process, measured while it lives."""
    code = "import sys, torch; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"`{python} -c 'import torch'` failed")
        time.sleep(settle_s)
        return memory_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":  # python -m bench.process_memory PID: its tree, one line each
    for row in tree_pss(int(sys.argv[1]) if len(sys.argv) > 1 else os.getpid()):
        print(row)
