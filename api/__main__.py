"""``python -m api``: serve the API with uvicorn on HOST:PORT."""

from __future__ import annotations

import uvicorn

from settings import get_settings


async def _preflight() -> None:
    """Start or reach the servers, so an outage is one clear line, not a trace (start-up migrates)."""
    from redis.exceptions import RedisError

    import bootstrap

    platform = await bootstrap.build_platform(get_settings(), run_migrations=False)
    try:
        await platform.queries.ping()
        try:
            await platform.redis.ping()
        except (RedisError, OSError) as exc:
            # Serving and the registry work without Redis; publishing and hot swap catch up later.
            print(f"warning: redis is unreachable ({exc}); starting anyway", flush=True)
    finally:
        await platform.aclose()


def main() -> None:
    """Check the servers, then run uvicorn with the app factory."""
    import asyncio
    import sys

    s = get_settings()
    try:
        asyncio.run(_preflight())
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        print(f"error: cannot start the API: {type(exc).__name__}: {first}", file=sys.stderr)
        sys.exit(3)
    uvicorn.run(
        "api.app:app_factory",
        factory=True,
        host=s.host,
        port=s.port,
        log_level="warning",
        access_log=False,
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
    )


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
