"""The server clients. The PostgreSQL engine: a bounded pool with a wait limit, server-side timeouts, keepalives.

The timeouts end a statement, a lock wait and a session idle inside a transaction that last
too long, so a stalled holder of the log's lock cannot freeze every append; TCP keepalives and
a user timeout let the server notice a client that vanished and release what it held.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(
    url: str,
    *,
    pool_size: int,
    pool_timeout_s: float,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
    idle_in_transaction_timeout_ms: int,
    keepalive_s: int,
) -> AsyncEngine:
    """An asyncpg engine; ``pool_size`` more connections may open on overflow."""
    server = {
        "statement_timeout": str(statement_timeout_ms),
        "lock_timeout": str(lock_timeout_ms),
        "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
        "tcp_keepalives_idle": str(keepalive_s),
        "tcp_keepalives_interval": str(max(1, keepalive_s // 3)),
        "tcp_keepalives_count": "3",
        # Keepalives never fire while the server has unacknowledged data for the client (a
        # NOTIFY to a relay leader whose host is cut off): then only this ends the session,
        # instead of tcp_retries2's ~15 minutes of retransmissions holding the leader's lock.
        "tcp_user_timeout": str(keepalive_s * 1000),
    }
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        connect_args={"timeout": 10, "server_settings": server},
    )


def create_redis(url: str) -> aioredis.Redis:
    """A redis.asyncio client; the socket timeout stays above any blocking read we issue."""
    # A restarted server leaves dead pooled sockets: retry once on a fresh connection.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=30,
        socket_connect_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError],
    )
