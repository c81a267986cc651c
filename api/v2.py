"""The Open Inference Protocol v2 (KServe): health, model metadata, readiness and infer."""

from __future__ import annotations

import time

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, RawBody

from api.deps import Port
from api.online_hooks import ROUTING_KEY_HEADER, OnlineHooks
from api.v2_binary import HEADER, build_outputs, read_request, wanted_outputs
from api.v2_schemas import (
    InferResponse,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
    TensorMetadata,
)
from api.v2_tensors import INPUT_NAMES, MAX_IMAGES, check_input, declared_images, images_of
from domain import names
from domain.errors import InvalidInput
from domain.registry.ports import RegistryReader
from ml.batcher import concatenate_images
from ml.inference import InferenceService
from ml.serving import LoadedModel

Inference = Port[InferenceService]
Queries = Port[RegistryReader]
INLINE_DECODE = 64  # below this a thread hop costs more than the conversion
EXTENSIONS = ["binary_tensor_data"]


def _metadata(name: str, versions: list[str], model_version: str | None = None) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        versions=versions if model_version is None else [model_version],
        platform="pytorch_torchvision",
        inputs=[
            TensorMetadata(n, d, [-1] if d == "BYTES" else [-1, 1, 28, 28])
            for n, d in INPUT_NAMES.items()
        ],
        outputs=[
            TensorMetadata("predictions", "INT64", [-1]),
            TensorMetadata("probabilities", "FP32", [-1, 10]),
            TensorMetadata("logits", "FP32", [-1, 10]),
        ],
    )


async def _infer(
    request: Request, name: str, version: str | None, body: bytes
) -> Response[InferResponse]:
    start = time.perf_counter()
    # Read from the app's state, not injected, like /predict: no dependency resolution per call.
    inference: InferenceService = request.app.state.inference
    names.check_model_name(name)
    if version is not None:
        names.check_version(version)
    req, raw = read_request(body, request.headers.get(HEADER))
    wanted = wanted_outputs(req)
    limit = min(MAX_IMAGES, inference.cache.batching.max_queue)
    for inp, part in zip(req.inputs, raw, strict=True):  # every shape, before any decoding
        check_input(inp, None if part is None else len(part))
    declared = sum(declared_images(inp) for inp in req.inputs)
    if declared > limit:
        raise InvalidInput(f"at most {limit} images per request (MAX_QUEUE), got {declared}")
    pairs = list(zip(req.inputs, raw, strict=True))
    if declared > INLINE_DECODE or any(inp.datatype == "BYTES" for inp in req.inputs):
        # PNG decoding and big list conversions block: run them off the event loop.
        parts = await anyio.to_thread.run_sync(lambda: [images_of(i, r) for i, r in pairs])
    else:
        parts = [images_of(i, r) for i, r in pairs]
    images = parts[0] if len(parts) == 1 else concatenate_images(parts)
    online: OnlineHooks = request.app.state.online
    request_id = online.request_id(request)
    routed = False
    if version is None and online.router is not None:
        version = online.route(name, request_id, request.headers.get(ROUTING_KEY_HEADER))
        routed = version is not None
    model: LoadedModel = await inference.resolve(name, version)
    request.state.model_name = name  # a metric label only once the name resolved
    logits = await model.batcher.submit(images)
    if online.wants(name, routed):
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        prod = inference.prod.get(name)
        version_served = model.ref.model_version
        online.after_batch(
            request_id, name, version_served, prod, images, logits, latency_ms, routed
        )
    outputs, blobs = build_outputs(wanted, logits)
    answer = InferResponse(
        model_name=name,
        model_version=model.ref.model_version,
        outputs=outputs,
        id=req.id,
        request_id=request_id,
    )
    if not blobs:
        return Response(answer, headers={"X-Request-Id": request_id})
    head = msgspec.json.encode(answer)
    return Response(
        b"".join((head, *blobs)),
        media_type="application/octet-stream",
        headers={"X-Request-Id": request_id, "Inference-Header-Content-Length": str(len(head))},
    )


class V2Controller(Controller):
    """KServe's required API, at /v2."""

    path = "/v2"
    tags = ["open inference protocol v2"]

    @get("/", summary="Server metadata", opt={"role": "public"})
    async def server_metadata(self) -> ServerMetadata:
        """Name, version and extensions."""
        return ServerMetadata("inference-eval-platform", "0.1.0", EXTENSIONS)

    @get("/health/live", summary="Server liveness", opt={"role": "public"})
    async def live(self) -> Live:
        """The server is up."""
        return Live(True)

    @get("/health/ready", summary="Server readiness", opt={"role": "public"})
    async def ready(self, queries: Queries) -> Ready:
        """Ready when PostgreSQL answers (raises 503 otherwise)."""
        await queries.ping()
        return Ready(True)

    @get("/models/{name:str}", summary="Model metadata")
    async def model_metadata(self, queries: Queries, name: FromPath[str]) -> ModelMetadata:
        """Versions, inputs and outputs of a model."""
        versions = await queries.list_versions(names.check_model_name(name))
        return _metadata(name, [v.model_version for v in versions])

    @get("/models/{name:str}/versions/{version:str}", summary="Model version metadata")
    async def version_metadata(
        self, queries: Queries, name: FromPath[str], version: FromPath[str]
    ) -> ModelMetadata:
        """Inputs and outputs of one version."""
        v = await queries.get_version(names.check_model_name(name), names.check_version(version))
        return _metadata(name, [], v.model_version)

    @get("/models/{name:str}/ready", summary="Model readiness (prod)")
    async def model_ready(self, inference: Inference, name: FromPath[str]) -> ModelReady:
        """Loads the prod version if needed; 404 unknown, 409 no prod."""
        model = await inference.resolve(names.check_model_name(name))
        return ModelReady(name, True, model.ref.model_version)

    @get("/models/{name:str}/versions/{version:str}/ready", summary="Model version readiness")
    async def version_ready(
        self, inference: Inference, name: FromPath[str], version: FromPath[str]
    ) -> ModelReady:
        """Loads the version if needed."""
        model = await inference.resolve(names.check_model_name(name), names.check_version(version))
        return ModelReady(name, True, model.ref.model_version)

    @post(
        "/models/{name:str}/infer",
        status_code=200,
        summary="Infer with the prod version",
        opt={"role": "predictor"},
    )
    async def infer(
        self, request: Request, name: FromPath[str], body: RawBody
    ) -> Response[InferResponse]:
        """Run the inputs (JSON, or JSON and binary tensor data) through the prod version."""
        return await _infer(request, name, None, body)

    @post(
        "/models/{name:str}/versions/{version:str}/infer",
        status_code=200,
        summary="Infer with a version",
        opt={"role": "predictor"},
    )
    async def infer_version(
        self, request: Request, name: FromPath[str], version: FromPath[str], body: RawBody
    ) -> Response[InferResponse]:
        """Run the inputs (JSON, or JSON and binary tensor data) through the named version."""
        return await _infer(request, name, version, body)
