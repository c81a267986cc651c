"""The baseline for ``just bench-predict``: /predict served the way the original platform did.

One request, one decode, one forward, on the event loop, no batching: a FastAPI-style
``async def`` handler (written with Litestar, the framework this project uses, so both sides
pay the same HTTP framework floor) that base64-decodes the PNG with PIL, normalises it, runs
the model on it alone and answers. It loads one artifact file and knows nothing of the
registry, so it measures only the serving design.

    python -m bench.baseline_server --artifact artifacts/mnist_cnn/v1.0.0/model.pt --port 8001
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import time
from pathlib import Path

import msgspec
import numpy as np
import torch
from litestar import Litestar, get, post
from PIL import Image

from ml.artifacts import load_model, read_metadata
from ml.device import resolve_device


class PredictIn(msgspec.Struct):
    """The original request body."""

    model_name: str
    image_b64: str
    model_version: str | None = None


class PredictOut(msgspec.Struct):
    """The original response body."""

    prediction: int
    latency_ms: float
    model_version: str
    label: str | None = None


def build_app(artifact: str, version: str, device: str = "auto") -> Litestar:
    """A Litestar app serving one artifact at /predict (and /health)."""
    meta = read_metadata(Path(artifact))
    if meta is None:
        raise SystemExit(f"error: {artifact} has no metadata.json beside it")
    target = resolve_device(device)
    model = load_model(Path(artifact), meta).to(target).eval()
    norm = meta.normalization or {}
    mean = float(norm.get("mean", 0.0))
    std = float(norm.get("std", 1.0))
    labels = list(meta.class_names)
    pid = str(os.getpid())

    @post("/predict", status_code=200)
    async def predict(data: PredictIn) -> PredictOut:
        start = time.perf_counter()
        image = Image.open(io.BytesIO(base64.b64decode(data.image_b64))).convert("L")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        x = ((x - mean) / std)[None, None].to(target)
        with torch.no_grad():
            probabilities = torch.softmax(model(x), dim=1)[0]
        prediction = int(probabilities.argmax())
        return PredictOut(
            prediction=prediction,
            latency_ms=round((time.perf_counter() - start) * 1000, 3),
            model_version=version,
            label=labels[prediction] if prediction < len(labels) else None,
        )

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "pid": pid}

    return Litestar([predict, health], debug=False, logging_config=None)


def main() -> None:
    """Serve the baseline with uvicorn, with the same loop and HTTP parser as the API."""
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    p.add_argument("--artifact", required=True, help="model.pt with its metadata.json beside it")
    p.add_argument("--model_version", default="baseline")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--device", default=os.environ.get("DEVICE", "auto"))
    args = p.parse_args()
    app = build_app(args.artifact, args.model_version, args.device)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
