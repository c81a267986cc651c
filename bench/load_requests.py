"""The load test's requests: sample images and the HTTP requests built from them, ahead of time."""

from __future__ import annotations

import base64
import io
import json

import numpy as np

from bench.client import build_request


def sample_images(count: int = 64) -> np.ndarray:
    """Real fashion_mnist test images when installed, else the 5k MNIST digits, else zeros."""
    try:
        from ml.datasets import load_dataset
        from settings import get_settings

        s = get_settings()
        for dataset in (f"fashion_mnist_{count}", f"mnist_{count}"):
            try:
                return load_dataset(
                    dataset, data_dir=s.files.data_dir, cache_dir=s.files.cache_dir
                ).images.numpy()
            except ValueError:
                continue
    except ImportError:
        pass
    return np.zeros((count, 28, 28), dtype=np.uint8)


def png_b64(image: np.ndarray) -> str:
    """A uint8 28x28 array as base64 PNG text."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def build_requests(url: str, endpoint: str, model_name: str, images: np.ndarray) -> list[bytes]:
    """Pre-built requests, one per sample image."""
    if endpoint == "v2-binary":  # the binary tensor extension, as tritonclient sends it
        from bench.v2_binary import binary_infer_request

        return [binary_infer_request(url, model_name, img[None]) for img in images]
    out = []
    for img in images:
        if endpoint == "predict":
            body = {"model_name": model_name, "image_b64": png_b64(img)}
            path = "/predict"
        else:
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": img.reshape(-1).tolist(),
                    }
                ]
            }
            path = f"/v2/models/{model_name}/infer"
        out.append(build_request(url, path, json.dumps(body, separators=(",", ":")).encode()))
    return out
