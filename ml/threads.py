"""Torch intra-op threads in a serving process: how many for which forward, on which thread.

Torch's thread count belongs to the calling thread (OpenMP's setting is per thread), and each
thread that runs a forward on more than one thread gets its own OpenMP pool, which lives as
long as the thread. libgomp counts every pool's threads against the machine's cores; past
them it stops spinning between parallel regions ("throttled"), and every region of every
forward then waits to wake its workers. Measured on 2 cores: a second, idle pool in another
thread made the event loop's mnist_cnn forwards 60% slower (handler p50 0.66 -> 1.08 ms).
So the serving threads share the cores between them, and warm-up runs on one thread.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
import time

import torch

from ml.cores import available_cores

SINGLE_THREAD = 1  # warm-up on the model-load thread: no OpenMP pool there


class ThreadPolicy:
    """Threads for a lone request (``small``, inline on the event loop) and for a batch
    (``large``, on the inference thread).

    A coalesced batch means requests are arriving concurrently and the event loop needs a core
    to parse them; giving torch all cores then makes its threads and the loop fight, which
    measured ~20% slower at concurrency 32 on 2 cores.
    """

    _set = threading.local()  # .threads: what this thread last asked torch for

    def __init__(self, small: int, large: int, idle: int | None = None) -> None:
        self.small, self.large = max(1, small), max(1, large)
        # For a lone request while no other API process of this server has one (PEERS).
        self.idle = max(self.small, idle or 0)

    def lone(self) -> int:
        """Threads for a lone request now: ``idle`` when the other API processes are idle."""
        return self.idle if self.idle > self.small and PEERS.others_idle() else self.small

    @classmethod
    def within_cores(
        cls, small: int, large: int, cores: int | None = None, idle: int | None = None
    ) -> ThreadPolicy:
        """Both pools together within the cores (plus the loop's own thread): ``small`` gives way.

        2 cores: 2 threads inline, 1 for batches (as before). 16 cores, one process: 2 inline
        and 15 for batches, not 16 and 15, which throttled both.
        """
        cores = cores or available_cores()
        large = max(1, min(large, cores))
        fit = cores + 1 - large
        return cls(max(1, min(small, fit)), large, max(1, min(idle or small, fit)))

    @classmethod
    def use(cls, threads: int) -> None:
        """Set the calling thread's torch thread count (only when it differs)."""
        if getattr(cls._set, "threads", 0) != threads:
            torch.set_num_threads(threads)
            cls._set.threads = threads


class PeerActivity:
    """Whether the other API processes of this server have a request in progress.

    ``python -m api`` with several processes gives each a slot in one small shared file
    (``attach``): a process writes +inf there while it has requests in ``submit`` and the time
    it finished the last one otherwise (CLOCK_MONOTONIC is one clock for the whole machine).
    A lone request may then use the cores the idle processes leave free, as one process
    would: 2 threads instead of 1 on 2 cores, 1.29 -> 1.16 ms at concurrency 1, measured.
    """

    WINDOW_S = 0.01  # a peer that finished a request this recently may be about to start another

    def __init__(self) -> None:
        self._slots: memoryview | None = None
        self._mine = -1
        self._active = 0

    def attach(self, path: str, slot: int) -> None:
        """Use slot ``slot`` of the shared file at ``path`` (8 bytes per process)."""
        with open(path, "r+b") as f:
            mapped = mmap.mmap(f.fileno(), os.fstat(f.fileno()).st_size)
        self._slots, self._mine = memoryview(mapped).cast("d"), slot
        self._slots[slot] = 0.0  # a process restarted in this slot starts idle

    def enter(self) -> None:
        """A request of this process is in progress."""
        self._active += 1
        if self._slots is not None:
            self._slots[self._mine] = math.inf

    def leave(self) -> None:
        """That request is done."""
        self._active -= 1
        if self._slots is not None and not self._active:
            self._slots[self._mine] = time.monotonic()

    def others_idle(self) -> bool:
        """True when no other process has a request now or had one in the last ``WINDOW_S``
        (and when there are no other processes)."""
        slots = self._slots
        if slots is None:
            return True
        since = time.monotonic() - self.WINDOW_S
        return all(last < since for i, last in enumerate(slots) if i != self._mine)


PEERS = PeerActivity()
