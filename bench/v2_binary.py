"""v2 infer requests with binary tensor data, as tritonclient sends them by default.

The JSON header is followed by the images' raw bytes (one UINT8 input, ``binary_data_size``)
and ``Inference-Header-Content-Length`` says where the JSON ends (docs/serving.md).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import numpy as np

HEADER = "Inference-Header-Content-Length"


def binary_infer_body(
    images: np.ndarray, binary_outputs: bool = True, outputs: tuple[str, ...] = ("predictions",)
) -> tuple[bytes, dict[str, str]]:
    """A v2 infer body for uint8 images [N,28,28] sent as binary data: (body, extra headers)."""
    raw = np.ascontiguousarray(images, dtype=np.uint8).tobytes()
    request = {
        "inputs": [
            {
                "name": "input_uint8",
                "shape": [len(images), 1, 28, 28],
                "datatype": "UINT8",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": o, "parameters": {"binary_data": binary_outputs}} for o in outputs],
    }
    head = json.dumps(request, separators=(",", ":")).encode()
    return head + raw, {HEADER: str(len(head))}


def binary_infer_request(
    url: str, model_name: str, images: np.ndarray, binary_outputs: bool = True
) -> bytes:
    """A complete keep-alive HTTP/1.1 POST for ``bench.client.Connection.send``."""
    body, headers = binary_infer_body(images, binary_outputs)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST /v2/models/{model_name}/infer HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Content-Type: application/octet-stream\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def binary_predictions(body: bytes, header_length: int) -> np.ndarray:
    """The ``predictions`` of a binary response (the first output's bytes after the JSON)."""
    head = json.loads(body[:header_length])
    first = head["outputs"][0]
    if first["name"] != "predictions" or "parameters" not in first:
        raise ValueError(f"the first output is not binary predictions: {first}")
    size = first["parameters"]["binary_data_size"]
    return np.frombuffer(body[header_length : header_length + size], dtype="<i8")
