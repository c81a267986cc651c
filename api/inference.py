"""POST /predict: the original single-image endpoint, on the dynamic batcher."""

from __future__ import annotations

import binascii
import time

import msgspec
import numpy as np
from litestar import Request, Response, post
from litestar.params import JSONBody

from api.online_hooks import ROUTING_KEY_HEADER, OnlineHooks, Served
from domain import names
from domain.errors import InvalidInput
from ml.inference import InferenceService, softmax
from ml.preprocess import InputError, decode_png_image
from observability.tracing import current_trace_id

MAX_B64_CHARS = 1_400_000  # ~1 MiB of PNG; the app-wide body limit still applies


class PredictRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One base64 PNG (28x28 grayscale) for a model; prod unless a version is named."""

    model_name: str
    image_b64: str
    model_version: str | None = None
    return_probabilities: bool = False


class PredictResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """The predicted class, the server-side latency, the version that answered and the request's
    id (the client's X-Request-Id when valid, else a new one), the key for POST /feedback."""

    prediction: int
    latency_ms: float
    model_version: str
    request_id: str
    probabilities: list[float] | None = None
    label: str | None = None


def decode_image_b64(value: str, field: str = "image_b64") -> np.ndarray:
    """Base64 PNG text -> uint8 [28,28], or InvalidInput naming the problem."""
    if len(value) > MAX_B64_CHARS:
        raise InvalidInput(f"{field} is {len(value):,} chars; the limit is {MAX_B64_CHARS:,}")
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field} is not valid base64 ({exc})") from None
    try:
        return decode_png_image(raw)
    except InputError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


@post(
    "/predict",
    status_code=200,
    tags=["inference"],
    summary="Classify one image",
    opt={"role": "predictor"},
)
async def predict(request: Request, data: JSONBody[PredictRequest]) -> Response[PredictResponse]:
    """Classify a 28x28 PNG with the prod (or the named) version."""
    start = time.perf_counter()
    # Read from the app's state, not injected: the hottest route skips dependency resolution.
    inference: InferenceService = request.app.state.inference
    online: OnlineHooks = request.app.state.online
    request_id = online.request_id(request)
    name = data.model_name
    names.check_model_name(name)
    version = data.model_version
    routed = False
    if version is not None:
        names.check_version(version)
    elif online.router is not None:
        version = online.route(name, request_id, request.headers.get(ROUTING_KEY_HEADER))
        routed = version is not None
    image = decode_image_b64(data.image_b64)
    model = await inference.resolve(name, version)
    # A metric label only once the name resolved: unknown names cannot create series.
    request.state.model_name = name
    logits = await model.batcher.submit(image[None])
    row = logits[0]
    prediction = int(row.argmax())
    probabilities = None
    if data.return_probabilities:
        probabilities = softmax(logits.astype(np.float32, copy=True))[0].round(6).tolist()
    labels = model.class_names
    latency_ms = round((time.perf_counter() - start) * 1000, 3)
    served_version = model.ref.model_version
    if online.wants(name, routed):
        online.after(
            Served(
                request_id=request_id,
                model_name=name,
                model_version=served_version,
                prod_version=inference.prod.get(name),
                input=image,
                prediction=prediction,
                scores=row.tolist(),
                latency_ms=latency_ms,
                trace_id=current_trace_id(),
                routed=routed,
            )
        )
    body = PredictResponse(
        prediction=prediction,
        latency_ms=latency_ms,
        model_version=served_version,
        request_id=request_id,
        probabilities=probabilities,
        label=labels[prediction] if prediction < len(labels) else None,
    )
    return Response(body, headers={"X-Request-Id": request_id})
