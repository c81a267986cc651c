"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.batch import BatchController
from api.errors import EXCEPTION_HANDLERS
from api.hot_swap import ProdFollower
from api.inference import predict
from api.middleware import metrics_middleware
from api.registry import RegistryController
from api.schemas import Health
from api.v2 import V2Controller
from bootstrap import Platform, build_inference, build_platform
from ml.inference import InferenceService
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


async def _stream_stats(p: Platform, stop: asyncio.Event) -> None:
    """Refresh queue depth, consumer lag, pending and dead-letter gauges for /metrics."""
    from observability.metrics import register_holder_gauges
    from storage.stream_admin import GAUGES, stream_stats

    holder: dict = {}
    register_holder_gauges(GAUGES, holder)
    while not stop.is_set():
        with contextlib.suppress(Exception):
            holder["stats"] = await stream_stats(p.redis)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


async def _warm_up(p: Platform, inference: InferenceService) -> None:
    """Load the prod versions in the background so the first requests do not pay for it."""
    log = structlog.get_logger("api")
    with contextlib.suppress(Exception):
        for name in await p.queries.prod_models(p.settings.model_cache_size):
            try:
                model = await inference.resolve(name)
                log.info("model_warmed", model_name=name, model_version=model.ref.model_version)
            except Exception as exc:
                log.warning("model_warm_up_failed", model_name=name, error=str(exc))


def provide_platform(state: State) -> Platform:
    """The platform built at start-up."""
    return state.platform


def provide_inference(state: State) -> InferenceService:
    """The inference service built at start-up."""
    return state.inference


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
        inference = app.state.inference = build_inference(p)
        stop = asyncio.Event()
        tasks = []
        tasks.append(asyncio.create_task(_stream_stats(p, stop), name="stream-stats"))
        warm = asyncio.create_task(
            _warm_up(p, inference) if settings.warm_up else asyncio.sleep(0), name="warm-up"
        )
        if settings.hot_swap:
            follower = app.state.follower = ProdFollower(inference, p.redis, p.queries)
            tasks.append(asyncio.create_task(follower.follow(stop), name="hot-swap"))
            tasks.append(asyncio.create_task(follower.poll(stop), name="hot-swap-poll"))
        if run_relay:
            relay = Relay(p.engine, p.redis, settings.relay_interval_s)
            app.state.relay = relay
            tasks.append(asyncio.create_task(relay.run(stop), name="relay"))
        try:
            yield
        finally:
            stop.set()
            warm.cancel()
            await asyncio.gather(warm, *tasks, return_exceptions=True)
            await inference.cache.aclose()
            if owned:
                await p.aclose()

    return Litestar(
        route_handlers=[
            health,
            metrics,
            predict,
            RegistryController,
            V2Controller,
            BatchController,
        ],
        dependencies={
            "platform": Provide(provide_platform, sync_to_thread=False),
            "inference": Provide(provide_inference, sync_to_thread=False),
        },
        middleware=[metrics_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Inference and evaluation platform", version=VERSION, path="/schema"
        ),
        logging_config=None,  # structlog is configured above; keep Litestar's defaults out
        debug=False,
    )


def app_factory() -> Litestar:
    """Entry for ``uvicorn --factory api.app:app_factory``."""
    return create_app()
