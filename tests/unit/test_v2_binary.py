"""The v2 binary tensor data wire format, without a server: bodies split, outputs chosen."""

from __future__ import annotations

import base64
import io
import json
import struct

import msgspec
import numpy as np
import pytest
from PIL import Image

from api.v2_binary import HEADER, build_outputs, read_request, wanted_outputs
from api.v2_schemas import InferRequest
from api.v2_tensors import check_input, images_of
from bench.v2_binary import binary_infer_body, binary_predictions
from domain.errors import InvalidInput


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_a_bench_body_round_trips_through_the_server_reader() -> None:
    images = np.arange(3 * 784, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    body, headers = binary_infer_body(images)
    req, parts = read_request(body, headers["Inference-Header-Content-Length"])
    assert HEADER == "inference-header-content-length"
    (inp,), (raw,) = req.inputs, parts
    check_input(inp, len(raw))
    assert (images_of(inp, raw) == images).all()
    assert wanted_outputs(req) == [("predictions", True)]


def test_an_output_s_own_binary_data_wins_over_binary_data_output() -> None:
    req = msgspec.convert(
        {
            "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": []}],
            "parameters": {"binary_data_output": True},
            "outputs": [
                {"name": "predictions"},
                {"name": "logits", "parameters": {"binary_data": False}},
            ],
        },
        InferRequest,
    )
    assert wanted_outputs(req) == [("predictions", True), ("logits", False)]
    logits = np.array([[0.0, 2.0, 1.0] + [0.0] * 7], dtype=np.float32)
    outputs, blobs = build_outputs(wanted_outputs(req), logits)
    assert outputs[0].parameters == {"binary_data_size": 8} and outputs[0].data is None
    assert outputs[1].data == logits.ravel().tolist() and outputs[1].parameters is None
    assert blobs == [np.array([1], dtype="<i8").tobytes()]
    head = msgspec.json.encode(outputs[0])
    body = b'{"outputs":[' + head + b"]}"
    assert binary_predictions(body + blobs[0], len(body)).tolist() == [1]


def test_binary_png_elements_raw_or_base64_decode_alike() -> None:
    image = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    p = _png(image)
    b64 = base64.b64encode(p)
    data = struct.pack("<I", len(p)) + p + struct.pack("<I", len(b64)) + b64
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input_png",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    ).encode()
    req, (raw,) = read_request(head + data, str(len(head)))
    check_input(req.inputs[0], len(raw))
    got = images_of(req.inputs[0], raw)
    assert (got[0] == image).all() and (got[1] == image).all()


ONE = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}'


@pytest.mark.parametrize(
    ("body", "header", "words"),
    [
        (b'{"inputs": []}', None, "inputs is empty"),
        (b'{"inputs": 3}', None, "Expected `array`, got `int`"),
        (ONE + b" xx", None, "needs the Inference-Header-Content-Length header"),
        (b'{"inputs": [1]}', " 99 ", "the body has 15 bytes"),
        (ONE.replace(b":[1]}", b":" + b"[" * 5000 + b"]" * 5000 + b"}"), None, "too deeply"),
    ],
)
def test_malformed_bodies_name_the_problem(body: bytes, header: str | None, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_request(body, header)
    assert words in str(caught.value)
