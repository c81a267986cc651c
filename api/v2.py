"""The Open Inference Protocol v2 (KServe): health, model metadata, readiness and infer."""

from __future__ import annotations

import math

import anyio
import numpy as np
from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from api.deps import Port
from api.inference import decode_image_b64
from api.v2_schemas import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
    TensorMetadata,
)
from domain import names
from domain.errors import InvalidInput
from domain.registry.ports import RegistryReader
from ml.batcher import concatenate_images
from ml.inference import InferenceService, softmax
from ml.serving import LoadedModel

Inference = Port[InferenceService]
Queries = Port[RegistryReader]
DTYPES = {"FP32": np.float32, "UINT8": np.uint8}
OUTPUTS = ("predictions", "probabilities", "logits")
MAX_IMAGES = 4096
INLINE_DECODE = 64  # below this a thread hop costs more than the conversion


def _check_input(inp: InferInput) -> None:
    """Datatype and shape of one input, checked before any input is decoded."""
    shape = inp.shape
    if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape):
        raise InvalidInput(f"input {inp.name!r}: shape must be non-negative integers, got {shape}")
    if inp.datatype == "BYTES":
        if len(shape) != 1:
            raise InvalidInput(f"input {inp.name!r}: BYTES inputs have shape [N], got {shape}")
        if len(inp.data) != shape[0]:
            raise InvalidInput(
                f"input {inp.name!r}: shape {shape} says {shape[0]} images, data has {len(inp.data)}"
            )
    elif inp.datatype not in DTYPES:
        raise InvalidInput(
            f"input {inp.name!r}: datatype {inp.datatype!r} is not supported; use FP32, UINT8 or BYTES"
        )
    elif len(shape) not in (2, 3, 4) or tuple(shape[1:]) not in ((784,), (28, 28), (1, 28, 28)):
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} is not supported; use [N,1,28,28], [N,28,28] or [N,784]"
        )
    if shape[0] > MAX_IMAGES:
        raise InvalidInput(f"input {inp.name!r}: at most {MAX_IMAGES} images per request")


def _images_of(inp: InferInput) -> np.ndarray:
    """Decode one checked input into uint8 or float32 images [N,28,28]."""
    shape = inp.shape
    if inp.datatype == "BYTES":
        out = np.empty((shape[0], 28, 28), dtype=np.uint8)
        for i, item in enumerate(inp.data):
            if not isinstance(item, str):
                raise InvalidInput(
                    f"input {inp.name!r}[{i}]: BYTES data must be base64 PNG strings"
                )
            out[i] = decode_image_b64(item, f"input {inp.name!r}[{i}]")
        return out
    dtype = DTYPES[inp.datatype]
    expected = math.prod(shape)
    try:
        arr = np.asarray(inp.data, dtype=np.float64 if dtype is np.uint8 else np.float32)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(
            f"input {inp.name!r}: data must be numbers in nested or flat lists of equal length"
        ) from None
    if arr.size != expected:
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} needs {expected} values, data has {arr.size}"
        )
    if not np.isfinite(arr).all():
        raise InvalidInput(f"input {inp.name!r}: data contains NaN or infinity")
    if dtype is np.uint8:
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255 or (arr != np.round(arr)).any():
            raise InvalidInput(f"input {inp.name!r}: UINT8 data must be integers in 0..255")
        return arr.astype(np.uint8).reshape(shape[0], 28, 28)
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
        # The declared range: FP32 pixels are scaled to [0, 1] like the training data.
        raise InvalidInput(f"input {inp.name!r}: FP32 data must be in [0, 1]")
    return arr.reshape(shape[0], 28, 28)


def _declared_images(inp: InferInput) -> int:
    """Images an input claims to hold (its first dimension), checked before any decoding."""
    first = inp.shape[0] if inp.shape else 0
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise InvalidInput(
            f"input {inp.name!r}: shape must be non-negative integers, got {inp.shape}"
        )
    return first


def _check_outputs(req: InferRequest) -> tuple[str, ...]:
    if not req.outputs:
        return ("predictions", "probabilities")
    wanted = tuple(o.name for o in req.outputs)
    unknown = [n for n in wanted if n not in OUTPUTS]
    if unknown:
        raise InvalidInput(f"unknown output {unknown[0]!r}; this model has {', '.join(OUTPUTS)}")
    return wanted


def _metadata(name: str, versions: list[str], model_version: str | None = None) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        versions=versions if model_version is None else [model_version],
        platform="pytorch_torchvision",
        inputs=[
            TensorMetadata("input", "FP32", [-1, 1, 28, 28]),
            TensorMetadata("input", "UINT8", [-1, 1, 28, 28]),
            TensorMetadata("input", "BYTES", [-1]),
        ],
        outputs=[
            TensorMetadata("predictions", "INT64", [-1]),
            TensorMetadata("probabilities", "FP32", [-1, 10]),
            TensorMetadata("logits", "FP32", [-1, 10]),
        ],
    )


async def _infer(
    request: Request, inference: InferenceService, name: str, version: str | None, req: InferRequest
) -> InferResponse:
    names.check_model_name(name)
    if version is not None:
        names.check_version(version)
    if not req.inputs:
        raise InvalidInput("inputs is empty")
    wanted = _check_outputs(req)
    limit = min(MAX_IMAGES, inference.cache.batching.max_queue)
    for inp in req.inputs:  # every shape, before any input is decoded
        _check_input(inp)
    declared = sum(_declared_images(inp) for inp in req.inputs)
    if declared > limit:
        raise InvalidInput(f"at most {limit} images per request (MAX_QUEUE), got {declared}")
    if declared > INLINE_DECODE or any(inp.datatype == "BYTES" for inp in req.inputs):
        # PNG decoding and big list conversions block: run them off the event loop.
        parts = await anyio.to_thread.run_sync(lambda: [_images_of(inp) for inp in req.inputs])
    else:
        parts = [_images_of(inp) for inp in req.inputs]
    images = parts[0] if len(parts) == 1 else concatenate_images(parts)
    model: LoadedModel = await inference.resolve(name, version)
    request.state.model_name = name  # a metric label only once the name resolved
    logits = await model.batcher.submit(images)
    n = len(images)
    outputs = []
    for out in wanted:
        if out == "predictions":
            outputs.append(InferOutput(out, [n], "INT64", logits.argmax(axis=1).tolist()))
        elif out == "probabilities":
            probs = softmax(logits.astype(np.float32, copy=True))
            outputs.append(InferOutput(out, list(probs.shape), "FP32", probs.ravel().tolist()))
        else:
            outputs.append(InferOutput(out, list(logits.shape), "FP32", logits.ravel().tolist()))
    return InferResponse(
        model_name=name, model_version=model.ref.model_version, outputs=outputs, id=req.id
    )


class V2Controller(Controller):
    """KServe's required API, at /v2."""

    path = "/v2"
    tags = ["open inference protocol v2"]

    @get("/", summary="Server metadata", opt={"role": "public"})
    async def server_metadata(self) -> ServerMetadata:
        """Name, version and extensions."""
        return ServerMetadata("inference-eval-platform", "0.1.0", [])

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
        self,
        request: Request,
        inference: Inference,
        name: FromPath[str],
        data: JSONBody[InferRequest],
    ) -> InferResponse:
        """Run the inputs through the prod version."""
        return await _infer(request, inference, name, None, data)

    @post(
        "/models/{name:str}/versions/{version:str}/infer",
        status_code=200,
        summary="Infer with a version",
        opt={"role": "predictor"},
    )
    async def infer_version(
        self,
        request: Request,
        inference: Inference,
        name: FromPath[str],
        version: FromPath[str],
        data: JSONBody[InferRequest],
    ) -> InferResponse:
        """Run the inputs through the named version."""
        return await _infer(request, inference, name, version, data)
