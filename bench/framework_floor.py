"""The framework floor for ``just bench-predict``: the HTTP floor with Litestar on top.

The API is a Litestar app, so every request also pays for Litestar's routing, the body's decode
into a typed struct and the response's encode. This app does exactly that and nothing else: a
``POST /predict`` whose body is decoded into the API's request shape (model name, base64 image)
and answered with a fixed struct of the response's shape; no middleware, no decode of the image,
no model. On uvicorn with uvloop and httptools, one process per core, like the HTTP floor, so the
two side by side say what the framework itself costs per request.

    python -m bench.framework_floor --port 8003 --workers 2
"""

from __future__ import annotations

import os

import msgspec
from litestar import Litestar, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import JSONBody

from bench.http_floor import serve


class FloorRequest(msgspec.Struct):
    """The API's /predict body."""

    model_name: str
    image_b64: str
    model_version: str | None = None


class FloorResponse(msgspec.Struct):
    """A fixed answer shaped like the API's."""

    prediction: int
    label: str
    model_version: str


ANSWER = FloorResponse(prediction=0, label="T-shirt/top", model_version="floor")


@post("/predict", status_code=200)
async def predict(data: JSONBody[FloorRequest]) -> FloorResponse:
    """Decode the body into its struct; answer the fixed struct."""
    return ANSWER


@get("/health")
async def health() -> dict[str, str]:
    """Liveness, for the harness."""
    return {"status": "ok"}


# Every response names its process, as the API's and the HTTP floor's do (the harness waits for
# each process's /health by it).
app = Litestar(
    [predict, health],
    response_headers=[ResponseHeader(name="x-server-pid", value=str(os.getpid()))],
)


def main() -> None:
    """Serve ``app``."""
    serve("bench.framework_floor:app", "python -m bench.framework_floor")


if __name__ == "__main__":
    main()
