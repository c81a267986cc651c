"""The rate limiter every API process shares: one token bucket per caller in Redis, spent by a
Lua script (atomic, on the server's clock), so N processes allow the rate once, not N times.

While Redis does not answer, each process falls back to its own buckets (domain.keys.buckets)
and tries Redis again after ``retry_s``: requests keep a limit, per process, rather than fail.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from domain.keys.buckets import RateLimiter

log = structlog.get_logger("rate_limit")
PREFIX = "ratelimit"

# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns the seconds to wait (0: go on),
# as a string, since Redis truncates a Lua number to an integer.
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


def quick_redis(redis: aioredis.Redis, timeout_s: float) -> aioredis.Redis:
    """A client of ``redis``'s server that gives up after ``timeout_s`` and never retries: a
    request must not wait on a Redis that is away, it falls back to its process's buckets."""
    pool = redis.connection_pool
    kwargs = {
        **pool.connection_kwargs,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_error": [],
    }
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


class RedisRateLimiter:
    """Implements domain.keys.buckets.RateLimiter with one shared bucket per caller in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        rate: float,
        burst: int,
        fallback: RateLimiter,
        retry_s: float = 1.0,
    ) -> None:
        self.rate, self.burst, self.fallback, self.retry_s = rate, max(1, burst), fallback, retry_s
        self._take = redis.register_script(TAKE)
        self._away_until: float | None = None  # set while the fallback serves
        # The limits are in the key: processes started with other limits keep their own buckets.
        self._prefix = f"{PREFIX}:{rate:g}/{self.burst}:"

    async def take(self, caller: str) -> float:
        """Spend one token of ``caller``'s shared bucket; 0 to go on, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        if self._away_until is None or time.monotonic() >= self._away_until:
            try:
                wait = await self._take(keys=[self._prefix + caller], args=[self.rate, self.burst])
            except (TimeoutError, RedisError, OSError) as exc:
                if self._away_until is None:  # once per outage, not once per request
                    log.warning("rate_limit_local", reason=f"{type(exc).__name__}: {exc}")
                self._away_until = time.monotonic() + self.retry_s
            else:
                if self._away_until is not None:
                    log.info("rate_limit_shared_again")
                    self._away_until = None
                return float(wait)
        return await self.fallback.take(caller)
