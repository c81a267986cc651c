"""How many CPUs this process may use: a fact of the machine, read by settings and by ml."""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPUs this process may run on: sched_getaffinity honours pinning (containers), where
    cpu_count may report the host's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
