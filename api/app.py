"""The Litestar application factory: routes, narrow dependencies and supervised background work."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import structlog
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.access import Access, access_middleware
from api.audit import AuditController, asyncapi
from api.batch import BatchController
from api.errors import EXCEPTION_HANDLERS
from api.gates import GateController, ModelGatesController
from api.hot_swap import ProdFollower
from api.inference import predict
from api.keys import KeysController
from api.lifecycle import LifecycleController
from api.middleware import metrics_middleware
from api.openapi import allow_header_middleware, document
from api.registry import RegistryController
from api.schemas import Health
from api.ui import console_routes, template_config
from api.v2 import V2Controller
from bootstrap import (
    Platform,
    Settings,
    build_inference,
    build_platform,
    build_relay,
    build_stream_stats,
    get_settings,
)
from domain.errors import DomainError
from ml.inference import InferenceService
from observability import supervisor
from observability.exposition import render_prometheus
from observability.logging import configure_logging
from observability.metrics import set_role
from observability.tracing import configure_tracing

VERSION = "0.1.0"
# What controllers may ask for by name: the command bus, the settings and the readers.
PORTS = (
    "bus",
    "settings",
    "queries",
    "job_queries",
    "audit",
    "keys",
    "gate_queries",
    "console",
)


@get("/health", tags=["ops"], summary="Liveness", opt={"role": "public"})
async def health() -> Health:
    """The process is up."""
    return Health(status="ok", version=VERSION)


@get("/metrics", tags=["ops"], include_in_schema=False, opt={"role": "public"})
async def metrics() -> Response[bytes]:
    """Prometheus exposition of the OpenTelemetry metrics."""
    body, content_type = render_prometheus()
    return Response(body, headers={"content-type": content_type})  # media_type would add a charset


async def _warm_up(p: Platform, inference: InferenceService) -> None:
    """Load the prod versions in the background so the first requests do not pay for it."""
    log = structlog.get_logger("api")
    try:
        prods = await p.queries.prod_models(p.settings.serving.model_cache_size)
    except DomainError as exc:
        log.warning("model_warm_up_skipped", error=str(exc))
        return
    for name in prods:
        try:
            model = await inference.resolve(name)
            log.info("model_warmed", model_name=name, model_version=model.ref.model_version)
        except DomainError as exc:
            log.warning("model_warm_up_failed", model_name=name, error=str(exc))


async def _start_up(p: Platform, inference: InferenceService, warm_up: bool) -> None:
    """Warm up, then freeze the start-up heap out of the garbage collector's full passes.

    Everything imported and built at start lives as long as the process; without the freeze a
    full collection walks all of it while requests wait (214 ms once in a c=32 run here).
    """
    if warm_up:
        await _warm_up(p, inference)
    gc.collect()
    gc.freeze()


def _provider(field: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state.platform, field)

    return Provide(provide, sync_to_thread=False)


def provide_inference(state: State) -> InferenceService:
    """The inference service built at start-up."""
    return state.inference


def create_app(
    platform: Platform | None = None, settings: Settings | None = None, run_relay: bool = True
) -> Litestar:
    """Build the app; with no platform given it connects (or starts servers) at start-up."""
    settings = settings or (platform.settings if platform else get_settings())
    obs = settings.observability
    configure_logging(obs.level())
    configure_tracing(
        obs.otel_service_name or "platform-api", obs.exporting, obs.otel_traces_sampler
    )
    set_role("api", obs.otel_service_name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = platform is None
        p = platform or await build_platform(settings)
        app.state.platform = p
        app.state.access = Access(settings, p.keys)
        inference = app.state.inference = build_inference(p)
        stop = asyncio.Event()
        tasks = [supervisor.start("stream-stats", build_stream_stats(p), stop)]
        warm = asyncio.create_task(
            _start_up(p, inference, settings.serving.warm_up), name="warm-up"
        )
        if settings.serving.hot_swap:
            follower = app.state.follower = ProdFollower(inference, p.redis, p.queries)
            tasks.append(supervisor.start("hot-swap", follower.follow, stop))
            tasks.append(supervisor.start("hot-swap-poll", follower.poll, stop))
        if run_relay:
            relay = app.state.relay = build_relay(p)
            tasks.append(supervisor.start("relay", relay.run, stop))
        try:
            yield
        finally:
            stop.set()
            warm.cancel()
            await asyncio.gather(warm, *tasks, return_exceptions=True)
            await inference.cache.aclose()
            if owned:
                await p.aclose()

    dependencies = {name: _provider(name) for name in PORTS}
    dependencies["inference"] = Provide(provide_inference, sync_to_thread=False)
    return Litestar(
        route_handlers=[
            health,
            metrics,
            predict,
            RegistryController,
            LifecycleController,
            V2Controller,
            BatchController,
            GateController,
            ModelGatesController,
            AuditController,
            KeysController,
            asyncapi,
            *console_routes(),  # the web console under /ui (api/ui)
        ],
        dependencies=dependencies,
        # Each route's role is its opt["role"], checked by access_middleware (api/access.py).
        middleware=[metrics_middleware, access_middleware, allow_header_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        on_startup=[document],  # the complete OpenAPI document (api/openapi.py)
        request_max_body_size=settings.api.max_body_bytes,
        template_config=template_config(),
        openapi_config=OpenAPIConfig(
            title="Inference and evaluation platform", version=VERSION, path="/schema"
        ),
        logging_config=None,  # structlog is configured above; keep Litestar's defaults out
        debug=False,
    )


def app_factory() -> Litestar:
    """Entry for ``uvicorn --factory api.app:app_factory``."""
    return create_app()
