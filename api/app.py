"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.errors import EXCEPTION_HANDLERS
from api.registry import RegistryController
from api.schemas import Health
from bootstrap import Platform, build_platform
from observability.logging import configure_logging
from observability.metrics import render_prometheus
from settings import Settings, get_settings
from storage.relay import Relay

VERSION = "0.1.0"


@get("/health", tags=["ops"], summary="Liveness")
async def health() -> Health:
    """The process is up."""
    return Health(status="ok", version=VERSION)


@get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics() -> Response[bytes]:
    """Prometheus exposition of the OpenTelemetry metrics."""
    body, content_type = render_prometheus()
    return Response(body, media_type=content_type)


def provide_platform(state: State) -> Platform:
    """The platform built at start-up."""
    return state.platform


def create_app(
    platform: Platform | None = None, settings: Settings | None = None, run_relay: bool = True
) -> Litestar:
    """Build the app; with no platform given it connects (or starts servers) at start-up."""
    settings = settings or (platform.settings if platform else get_settings())
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = platform is None
        p = platform or await build_platform(settings)
        app.state.platform = p
        stop = asyncio.Event()
        tasks = []
        if run_relay:
            relay = Relay(p.engine, p.redis, settings.relay_interval_s)
            app.state.relay = relay
            tasks.append(asyncio.create_task(relay.run(stop), name="relay"))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if owned:
                await p.aclose()

    return Litestar(
        route_handlers=[health, metrics, RegistryController],
        dependencies={"platform": Provide(provide_platform, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Inference and evaluation platform", version=VERSION, path="/schema"
        ),
        response_headers=None,
        debug=False,
    )


def app_factory() -> Litestar:
    """Entry for ``uvicorn --factory api.app:app_factory``."""
    return create_app()


__all__ = ["MediaType", "create_app"]
