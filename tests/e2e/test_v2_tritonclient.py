"""The v2 protocol as a client no one here wrote uses it: Triton's `tritonclient[http]` against a
real API process, in JSON and in binary tensor data mode, and bad binary bodies refused with 400.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import uuid

import anyio
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image

from cli.processes import free_port, stop_process, wait_healthy
from tests.conftest import ROOT
from tests.e2e.test_inference_http import local_predictions

MAX_BODY = 4 << 20  # small, so the 413 case needs only a few megabytes


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from ml.datasets import load_dataset

    d = load_dataset("fashion_mnist_64", cache_dir=ROOT / ".platform" / "cache")
    return d.images.numpy()


@pytest.fixture(scope="module")
def served(server_urls, trained_artifacts, tmp_path_factory):
    """A real ``python -m api`` with mnist_cnn v1 registered and promoted: (url, model name)."""
    tmp = tmp_path_factory.mktemp("v2-triton")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": server_urls["database_url"],
        "REDIS_URL": server_urls["redis_url"],
        "ARTIFACTS_DIR": str(tmp / "artifacts"),
        "ARTIFACT_IMPORT_ROOTS": str(tmp_path_factory.getbasetemp()),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_WORKERS": "1",
        "TORCH_THREADS": "1",
        "WARM_UP": "0",
        "MAX_BODY_BYTES": str(MAX_BODY),
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    name = f"t-{uuid.uuid4().hex[:12]}"
    try:
        anyio.run(lambda: wait_healthy(url, proc, timeout_s=120))
        with httpx.Client(base_url=url, timeout=60) as c:
            body = {"model_version": "v1", "artifact_path": str(trained_artifacts["v1"])}
            r = c.post(f"/models/{name}/versions", json=body)
            assert r.status_code == 201, r.text
            r = c.post(f"/models/{name}/versions/v1/promote")
            assert r.status_code == 200, r.text
        yield url, name
    finally:
        stop_process(proc)


def _forms(images: np.ndarray, binary: bool) -> dict[str, tuple[str, np.ndarray]]:
    """Each advertised input name -> (datatype, the 64 images in that form)."""
    pngs = [png(i) for i in images]
    as_bytes = pngs if binary else [base64.b64encode(p) for p in pngs]  # JSON: base64 text
    return {
        "input": ("FP32", (images / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)),
        "input_uint8": ("UINT8", images.reshape(-1, 1, 28, 28)),
        "input_png": ("BYTES", np.array(as_bytes, dtype=np.object_)),
    }


def test_tritonclient_metadata_and_infer_in_json_and_binary_modes(
    served, trained_artifacts, images
) -> None:
    url, name = served
    expected = local_predictions(trained_artifacts["v1"], images)
    client = triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=120)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(name)
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        inputs = client.get_model_metadata(name)["inputs"]
        by_name = {i["name"]: i["datatype"] for i in inputs}
        assert len(by_name) == len(inputs) == 3  # unique names
        assert by_name == {"input": "FP32", "input_uint8": "UINT8", "input_png": "BYTES"}
        for binary in (False, True):
            for input_name, (datatype, data) in _forms(images, binary).items():
                tensor = triton.InferInput(input_name, list(data.shape), datatype)
                tensor.set_data_from_numpy(data, binary_data=binary)
                outputs = [
                    triton.InferRequestedOutput("predictions", binary_data=binary),
                    triton.InferRequestedOutput("probabilities", binary_data=binary),
                ]
                result = client.infer(name, [tensor], outputs=outputs, request_id="r-1")
                where = (input_name, binary)
                assert result.as_numpy("predictions").tolist() == expected.tolist(), where
                probs = result.as_numpy("probabilities").reshape(64, 10)
                assert np.allclose(probs.sum(axis=1), 1, atol=1e-4), where
                assert (probs.argmax(axis=1) == expected).all(), where
                sent = result.get_output("predictions")
                assert ("binary_data_size" in (sent.get("parameters") or {})) is binary, sent
                assert ("data" in sent) is not binary, sent
                assert result.get_response()["id"] == "r-1"
        # No outputs named: tritonclient asks for every output as binary (binary_data_output).
        tensor = triton.InferInput("input_uint8", [64, 1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(images.reshape(-1, 1, 28, 28))
        result = client.infer(name, [tensor], model_version="v1")
        assert result.as_numpy("predictions").tolist() == expected.tolist()
        assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 64 * 40
    finally:
        client.close()


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def _u8(name: str, n: int, size: int | None = None, datatype: str = "UINT8") -> dict:
    pixel = bytes(784 * (4 if datatype == "FP32" else 1))
    return {
        "name": name,
        "shape": [n, 784],
        "datatype": datatype,
        "parameters": {"binary_data_size": n * len(pixel) if size is None else size},
    }


def _pngs(n: int, size: int) -> dict:
    params = {"binary_data_size": size}
    return {"name": "input_png", "shape": [n], "datatype": "BYTES", "parameters": params}


def test_binary_response_keeps_the_request_path_headers_and_old_input_name(served, images):
    url, name = served
    raw = images[:2].tobytes()
    body, headers = _binary_body(
        {"inputs": [_u8("input", 2)], "parameters": {"binary_data_output": True}}, raw
    )
    r = httpx.post(f"{url}/v2/models/{name}/infer", content=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/octet-stream")
    # The one request path: correlation and request ids as on every route.
    assert r.headers["x-correlation-id"] and r.headers["x-request-id"]
    n = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert [o["name"] for o in head["outputs"]] == ["predictions", "probabilities"]
    assert sizes == [2 * 8, 2 * 10 * 4] and len(r.content) == n + sum(sizes)
    preds = np.frombuffer(r.content[n : n + 16], dtype="<i8")
    expected = httpx.post(
        f"{url}/predict",
        json={"model_name": name, "image_b64": base64.b64encode(png(images[1])).decode()},
        timeout=60,
    ).json()["prediction"]
    assert int(preds[1]) == expected  # the same answer as /predict


def test_bad_binary_bodies_get_a_400_naming_the_problem(served, images) -> None:
    url, name = served
    infer = f"{url}/v2/models/{name}/infer"
    one = images[:1].tobytes()
    p = png(images[0])
    fp32_nan = np.full(784, np.nan, dtype="<f4").tobytes()
    body, headers = _binary_body({"inputs": [_u8("input", 1)]}, one)
    cases = [
        (body, {"Inference-Header-Content-Length": "ten"}, "must be a byte count"),
        (body, {"Inference-Header-Content-Length": "-3"}, "must be a byte count"),
        (body, {"Inference-Header-Content-Length": str(len(body) + 1)}, "the body has"),
        (body, {}, "needs the Inference-Header-Content-Length header"),
        (body + b"x", headers, "add up to 784 bytes but 785 bytes follow"),
        (body[:-1], headers, "add up to 784 bytes but 783 bytes follow"),
        (*_binary_body({"inputs": [_u8("input", 2, size=784)]}, one), "is 1,568 bytes"),
        (*_binary_body({"inputs": [_u8("input", 1, 784, "FP32")]}, one), "is 3,136 bytes"),
        (*_binary_body({"inputs": [_u8("input", 1, "x")]}, one), "non-negative integer"),
        (*_binary_body({"inputs": [_u8("input_uint8", 1, 784, "FP32")]}, one), "is UINT8"),
        (*_binary_body({"inputs": [_u8("input", 1, datatype="FP32")]}, fp32_nan), "NaN"),
        (
            *_binary_body({"inputs": [{**_u8("input", 1), "data": [0] * 784}]}, one),
            "both data and binary_data_size",
        ),
        (*_binary_body({"inputs": [{**_u8("input", 1), "parameters": {}}]}), "has no data"),
        (*_binary_body({"inputs": [_pngs(1, 8)]}, struct.pack("<I", 99) + b"abcd"), "99 bytes"),
        (
            *_binary_body({"inputs": [_pngs(2, 4 + len(p))]}, struct.pack("<I", len(p)) + p),
            "holds 1",
        ),
        (*_binary_body({"inputs": [_pngs(1, 3)]}, b"abc"), "4-byte length"),
        (*_binary_body({"inputs": [_pngs(1, 8)]}, struct.pack("<I", 4) + b"\x89PNG"), "PNG"),
        (
            *_binary_body(
                {"inputs": [_u8("input", 1)], "parameters": {"binary_data_output": "yes"}}, one
            ),
            "binary_data_output must be true or false",
        ),
        (
            *_binary_body(
                {
                    "inputs": [_u8("input", 1)],
                    "outputs": [{"name": "logits", "parameters": {"binary_data": 1}}],
                },
                one,
            ),
            "binary_data must be true or false",
        ),
        (b"", {}, "the body is empty"),
    ]
    with httpx.Client(timeout=60) as c:
        for content, hdrs, words in cases:
            r = c.post(infer, content=content, headers=hdrs)
            assert r.status_code == 400, (words, r.status_code, r.text)
            assert r.json()["status_code"] == 400 and words in r.json()["detail"], (words, r.text)
        big, hdrs = _binary_body({"inputs": [_u8("input", 6000)]}, bytes(6000 * 784))
        r = c.post(infer, content=big, headers=hdrs)
        assert r.status_code == 413, r.text  # MAX_BODY_BYTES still holds for binary bodies
