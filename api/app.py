"""The Litestar application factory: routes, the dependencies and background work that the
composition root (bootstrap.api) builds, started in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.access import Access, access_middleware
from api.allow_header import allow_header_middleware
from api.anonymous import StartRefused, anonymous_refusal, listening_hosts
from api.audit import AuditController, asyncapi
from api.batch import BatchController
from api.errors import AFTER_EXCEPTION, EXCEPTION_HANDLERS
from api.gates import GateController, ModelGatesController
from api.inference import predict
from api.keys import KeysController
from api.lifecycle import LifecycleController
from api.log import LogController
from api.middleware import metrics_middleware
from api.online import OnlineController
from api.openapi import document
from api.receipts import ReceiptController
from api.registry import RegistryController
from api.schemas import Health
from api.traffic import CaptureController, feedback
from api.ui import console_routes, template_config
from api.v2 import V2Controller
from bootstrap import Platform, Settings, get_settings
from bootstrap.api import ApiServices, api_services
from ml.inference import InferenceService
from observability.exposition import render_prometheus
from observability.logging import configure_logging
from observability.metrics import set_role
from observability.tracing import configure_tracing

VERSION = "0.1.0"


@get("/health", tags=["ops"], summary="Liveness", opt={"role": "public"})
async def health() -> Health:
    """The process is up."""
    return Health(status="ok", version=VERSION)


@get("/metrics", tags=["ops"], include_in_schema=False, opt={"role": "public"})
async def metrics() -> Response[bytes]:
    """Prometheus exposition of the OpenTelemetry metrics."""
    body, content_type = render_prometheus()
    return Response(body, headers={"content-type": content_type})  # media_type would add a charset


def _provider(field: str) -> Provide:
    def provide(state: State) -> Any:
        return getattr(state.services, field)

    return Provide(provide, sync_to_thread=False)


def provide_inference(state: State) -> InferenceService:
    """The inference service built at start-up."""
    return state.inference


class PlatformApp(Litestar):
    """Litestar whose refused start (StartRefused) is told in one line, not a traceback."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve; on a refused start the server prints the reason alone."""
        if scope["type"] != "lifespan":
            return await super().__call__(scope, receive, send)

        async def one_line(message: Any) -> None:
            refusal = self.state.get("refusal")
            if message["type"] == "lifespan.startup.failed" and refusal:
                message = {**message, "message": f"error: {refusal}"}
            await send(message)

        await super().__call__(scope, receive, one_line)


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
        async with api_services(settings, platform, run_relay=run_relay) as services:
            # Here, not in `python -m api` only: uvicorn --factory and any ASGI server get it.
            hosts = listening_hosts(settings)
            refusal = await anonymous_refusal(settings, services.keys, hosts)
            if refusal:
                app.state.refusal = refusal
                raise StartRefused(refusal)
            app.state.services = services
            app.state.access = Access(settings, services.keys, services.limiter)
            app.state.inference = services.inference  # /predict reads it from here, no DI
            app.state.online = services.online  # the request path hooks (api/online_hooks.py)
            async with services.background.running():
                yield

    dependencies = {name: _provider(name) for name in ApiServices.NAMES}
    dependencies["inference"] = Provide(provide_inference, sync_to_thread=False)
    return PlatformApp(
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
            LogController,
            ReceiptController,
            KeysController,
            CaptureController,
            feedback,
            OnlineController,
            asyncapi,
            *console_routes(),  # the web console under /ui (api/ui)
        ],
        dependencies=dependencies,
        # Each route's role is its opt["role"], checked by access_middleware (api/access.py).
        middleware=[metrics_middleware, access_middleware, allow_header_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=AFTER_EXCEPTION,  # an unknown model's message lists the known ones
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
