"""``python -m api``: serve the API with uvicorn on HOST:PORT."""

from __future__ import annotations

import uvicorn

from settings import get_settings


def main() -> None:
    """Run uvicorn with the app factory."""
    s = get_settings()
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
