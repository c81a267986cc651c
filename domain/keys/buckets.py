"""Token buckets: how often a caller (a key, or a client address) may act, in one process.

The API shares one bucket per caller across its processes through Redis
(storage/keys/limiter.py); these per-process buckets are what it falls back to while Redis is
away, and what a limiter with no server uses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

MAX_CALLERS = 10_000  # buckets kept per process; the longest idle caller starts afresh


class RateLimiter(Protocol):
    """Spends one token of a caller's bucket."""

    async def take(self, caller: str) -> float:
        """0 when the caller may go on, else the seconds until a token is back."""
        ...


class TokenBuckets:
    """One token bucket per caller, in this process: ``rate`` per second, up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_callers: int = MAX_CALLERS) -> None:
        self.rate, self.burst, self.max_callers = rate, max(1, burst), max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def spend(self, caller: str, now: float | None = None) -> float:
        """Spend one token; 0 when allowed, else the seconds until a token is back."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1 if tokens >= 1 else tokens, now)
        if len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return wait

    async def take(self, caller: str) -> float:
        """RateLimiter: spend one token now."""
        return self.spend(caller)
