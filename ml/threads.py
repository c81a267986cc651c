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

import threading

import torch

from settings import available_cores

SINGLE_THREAD = 1  # warm-up on the model-load thread: no OpenMP pool there


class ThreadPolicy:
    """Threads for a lone request (``small``, inline on the event loop) and for a batch
    (``large``, on the inference thread).

    A coalesced batch means requests are arriving concurrently and the event loop needs a core
    to parse them; giving torch all cores then makes its threads and the loop fight, which
    measured ~20% slower at concurrency 32 on 2 cores.
    """

    _set = threading.local()  # .threads: what this thread last asked torch for

    def __init__(self, small: int, large: int) -> None:
        self.small, self.large = max(1, small), max(1, large)

    @classmethod
    def within_cores(cls, small: int, large: int, cores: int | None = None) -> ThreadPolicy:
        """Both pools together within the cores (plus the loop's own thread): ``small`` gives way.

        2 cores: 2 threads inline, 1 for batches (as before). 16 cores, one process: 2 inline
        and 15 for batches, not 16 and 15, which throttled both.
        """
        cores = cores or available_cores()
        large = max(1, min(large, cores))
        return cls(max(1, min(small, cores + 1 - large)), large)

    @classmethod
    def use(cls, threads: int) -> None:
        """Set the calling thread's torch thread count (only when it differs)."""
        if getattr(cls._set, "threads", 0) != threads:
            torch.set_num_threads(threads)
            cls._set.threads = threads
