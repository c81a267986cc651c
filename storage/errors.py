"""One typed error per failed backing service, raised by the adapter that knows which it was."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from domain.errors import InvalidInput, ServiceUnavailable

POSTGRES, REDIS = "postgresql", "redis"
# Server-side limits that end a request: the server is overloaded or something holds too long.
_BUSY: dict[type, str] = {
    asyncpg.LockNotAvailableError: "a lock wait timed out",
    asyncpg.QueryCanceledError: "a statement timed out",
    asyncpg.IdleInTransactionSessionTimeoutError: "an idle transaction was ended",
    asyncpg.TooManyConnectionsError: "no connection slot is free",
}
P = ParamSpec("P")
T = TypeVar("T")


def postgres_error(exc: BaseException) -> Exception | None:
    """The domain error a PostgreSQL failure means, or None when it is not one we translate."""
    if isinstance(exc, DBAPIError):
        orig = getattr(exc, "orig", None)
        cause = getattr(orig, "__cause__", None) or orig
        if isinstance(
            cause, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
        ):
            return InvalidInput("text must not contain NUL characters")
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return ServiceUnavailable(f"{POSTGRES} is unavailable; retry shortly")
        if isinstance(cause, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
            return ServiceUnavailable(f"{POSTGRES} is unavailable; retry shortly")
        if isinstance(cause, tuple(_BUSY)):  # DB_LOCK_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS, ...
            why = next(v for k, v in _BUSY.items() if isinstance(cause, k))
            return ServiceUnavailable(f"{POSTGRES} is busy ({why}); retry shortly")
        return None
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable(f"{POSTGRES} connection pool is exhausted; retry shortly")
    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return ServiceUnavailable(f"{POSTGRES} is unavailable; retry shortly")
    if isinstance(exc, tuple(_BUSY)):  # raised by asyncpg itself, outside SQLAlchemy
        return ServiceUnavailable(f"{POSTGRES} is busy; retry shortly")
    return None


@asynccontextmanager
async def postgres_errors() -> AsyncIterator[None]:
    """Re-raise driver and connection failures as ServiceUnavailable / InvalidInput."""
    try:
        yield
    except Exception as exc:
        mapped = postgres_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Re-raise Redis connection failures as ServiceUnavailable."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise ServiceUnavailable(f"{REDIS} is unavailable; retry shortly") from exc


def on_postgres(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a query method so its PostgreSQL failures surface as domain errors."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        async with postgres_errors():
            return await fn(*args, **kwargs)

    return wrapper


def on_redis(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a method so its Redis failures surface as ServiceUnavailable."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        async with redis_errors():
            return await fn(*args, **kwargs)

    return wrapper
