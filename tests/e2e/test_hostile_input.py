"""Regression tests for attacks found by fuzzing: each must get a clear 4xx and harm nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings

import numpy as np
import pytest

from ml.batcher import DynamicBatcher

pytestmark = pytest.mark.anyio


async def _register(client, name: str, version: str, path, **extra):
    return await client.post(
        f"/models/{name}/versions",
        json={"model_version": version, "artifact_path": str(path), **extra},
    )


async def test_concurrent_registrations_of_one_version_keep_the_winner_file(
    client, model_name, trained_artifacts
) -> None:
    paths = [trained_artifacts["v1"], trained_artifacts["v2"]] * 2
    results = await asyncio.gather(*(_register(client, model_name, "race", p) for p in paths))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}
    ready = await client.get(f"/v2/models/{model_name}/versions/race/ready")
    assert ready.status_code == 200, ready.text  # the stored file matches the recorded sha256


async def test_mixed_uint8_and_float_requests_in_one_batch_are_scaled_alike() -> None:
    seen = []

    def forward(batch: np.ndarray) -> np.ndarray:
        # Like LoadedModel.forward: uint8 means 0..255, float means [0, 1].
        seen.append(batch.dtype)
        scaled = batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch
        return scaled.reshape(len(batch), -1).max(axis=1, keepdims=True)

    batcher = DynamicBatcher(forward, max_batch=8)
    as_uint8 = np.full((1, 28, 28), 255, dtype=np.uint8)
    as_float = np.ones((1, 28, 28), dtype=np.float32)
    # Occupy the worker so the next two requests are coalesced into one batch.
    first = asyncio.create_task(batcher.submit(as_uint8))
    await asyncio.sleep(0)
    a, b = await asyncio.gather(batcher.submit(as_uint8), batcher.submit(as_float))
    await first
    await batcher.aclose()
    assert np.float32 in seen  # a mixed batch was formed
    assert float(a[0, 0]) == pytest.approx(1.0) and float(b[0, 0]) == pytest.approx(1.0)


async def test_fifo_or_directory_metadata_is_refused_without_blocking(
    client, model_name, trained_artifacts, tmp_path
) -> None:
    for kind in ("fifo", "dir"):
        folder = tmp_path / kind
        folder.mkdir()
        shutil.copy(trained_artifacts["v1"], folder / "model.pt")
        if kind == "fifo":
            os.mkfifo(folder / "metadata.json")
        else:
            (folder / "metadata.json").mkdir()
        r = await asyncio.wait_for(
            _register(client, model_name, f"v-{kind}", folder / "model.pt"), 10
        )
        assert r.status_code == 400 and "regular file" in r.json()["detail"], r.text
    assert (await client.get("/health")).status_code == 200


async def test_bad_metadata_and_weights_that_do_not_fit_are_refused(
    client, model_name, trained_artifacts
) -> None:
    path = trained_artifacts["v1"]
    cases = [
        ({"architecture": "nope"}, "unknown"),
        ({"architecture": "mnist_cnn", "normalization": {"mean": 0.1, "std": 0.0}}, "std"),
        ({"architecture": "mnist_cnn", "num_classes": -1}, "num_classes"),
        ({"architecture": "mlp"}, "do not fit"),
        ({"architecture": "mnist_cnn", "class_names": ["\x00"] * 10, "num_classes": 10}, "NUL"),
    ]
    for i, (meta, message) in enumerate(cases):
        r = await _register(client, model_name, f"m{i}", path, metadata=meta)
        assert r.status_code == 400 and message in r.json()["detail"], (meta, r.text)
    assert (await client.get(f"/models/{model_name}/versions")).status_code == 404  # nothing stored


async def test_nul_newline_deep_json_and_huge_ids_get_4xx(
    client, model_name, trained_artifacts
) -> None:
    r = await _register(client, model_name, "v1", trained_artifacts["v1"])
    assert r.status_code == 201
    cases = [
        ("post", f"/models/{model_name}/versions/v1/promote", {"reason": "a\x00b"}, 400),
        (
            "post",
            f"/models/{model_name}/versions",
            {
                "model_version": "v2",
                "artifact_path": str(trained_artifacts["v2"]),
                "tags": {"k": "a\x00"},
            },
            400,
        ),
        (
            "post",
            "/models/nl%0A/versions",
            {"model_version": "v1", "artifact_path": str(trained_artifacts["v1"])},
            400,
        ),
        (
            "post",
            f"/models/{model_name}/versions",
            {"model_version": "v\n", "artifact_path": str(trained_artifacts["v1"])},
            400,
        ),
        (
            "post",
            "/batch/submit",
            {"model_name": model_name, "dataset_id": "mnist_" + "9" * 5000, "model_version": "v1"},
            400,
        ),
        (
            "post",
            "/batch/submit",
            {"model_name": model_name, "dataset_id": "mnist_١٢", "model_version": "v1"},
            400,
        ),
        (
            "post",
            "/batch/submit",
            {"model_name": model_name, "dataset_id": " mnist_10 ", "model_version": "v1"},
            400,
        ),
        ("get", "/batch/status/%00", None, 404),
        ("get", "/batch?model_name=%00", None, 400),
    ]
    for method, url, body, status in cases:
        r = await getattr(client, method)(url, **({"json": body} if body is not None else {}))
        assert r.status_code == status, (url, body, r.text)
    deep = "[" * 2000 + "]" * 2000
    for url in (
        f"/v2/models/{model_name}/versions/v1/infer",
        "/batch/submit",
        f"/models/{model_name}/rollback",
    ):
        r = await client.post(
            url, content=deep.encode(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (url, r.text)
    versions = (await client.get(f"/models/{model_name}/versions")).json()
    assert [v["model_version"] for v in versions] == ["v1"]


async def test_hostile_keys_headers_and_list_parameters_get_4xx(client) -> None:
    cases = [
        ("post", "/keys", {"key_name": "Bad Name", "role": "reader"}, 400),
        ("post", "/keys", {"key_name": "a\x00b", "role": "reader"}, 400),
        ("post", "/keys", {"key_name": "k" * 65, "role": "reader"}, 400),
        ("post", "/keys", {"key_name": "anonymous", "role": "admin"}, 400),
        ("post", "/keys", {"key_name": "ok-name", "role": "root"}, 400),
        ("post", "/keys", {"key_name": "ok-name", "role": "reader", "extra": 1}, 400),
        ("post", "/keys", {"key_name": "ok-name", "role": "reader", "reason": "r" * 1001}, 400),
        ("delete", "/keys/%00", None, 400),
        ("delete", "/keys/a..b", None, 400),
        ("get", "/models?limit=99999999999999999999999", None, 400),
        ("get", "/models?cursor=" + "A" * 513, None, 400),
        ("get", "/models?cursor=%00", None, 400),
        ("get", "/keys?cursor=W10", None, 400),
        ("get", "/batch?cursor=WyJ4IiwieSJd", None, 400),
        ("get", "/events?after=99999999999999999999", None, 400),
    ]
    for method, url, body, status in cases:
        r = await client.request(
            method.upper(), url, **({"json": body} if body is not None else {})
        )
        assert r.status_code == status, (url, body, r.text)
    for header in (b"\t", b"x" * 10_000, "é".encode()):
        r = await client.get("/models", headers={b"x-api-key": header})
        assert r.status_code == 401, r.text  # an unknown key, never a 500


async def test_v2_checks_every_shape_and_range_before_decoding(client, model_name) -> None:
    url = f"/v2/models/{model_name}/infer"
    not_png = {"name": "a", "shape": [2], "datatype": "BYTES", "data": ["!!not-a-png", "x"]}
    bad_shape = {"name": "b", "shape": [1, 3, 28, 28], "datatype": "FP32", "data": [0.0] * 2352}
    r = await client.post(url, json={"inputs": [not_png, bad_shape]})
    # The second input's shape is refused before the first input's images are decoded.
    assert r.status_code == 400 and "input 'b'" in r.text and "not supported" in r.text, r.text
    many = {"name": "c", "shape": [3000, 784], "datatype": "UINT8", "data": []}
    r = await client.post(url, json={"inputs": [many, {**many, "name": "d"}]})
    assert r.status_code == 400 and "at most" in r.text, r.text  # counted across inputs
    # 1e39 is beyond float32: refused as out of range, with no overflow warning on the way.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for value in (1.5, -0.1, 1e39):
            body = {"name": "x", "shape": [1, 784], "datatype": "FP32", "data": [value] * 784}
            r = await client.post(url, json={"inputs": [body]})
            assert r.status_code == 400 and "[0, 1]" in r.text, (value, r.text)
    r = await client.post(
        url,
        content=b'{"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", '
        b'"data": [NaN]}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text


async def test_a_job_of_too_many_shards_is_a_400_naming_the_limit(
    client, model_name, state_dict_file
) -> None:
    assert (await _register(client, model_name, "v1", state_dict_file())).status_code == 201
    r = await client.post(f"/models/{model_name}/versions/v1/promote", json={})
    assert r.status_code == 200, r.text
    body = {
        "model_name": model_name,
        "dataset_id": "fashion_mnist_train",
        "config": {"batch_size": 32, "shard_size": 1},
    }
    r = await client.post("/batch/submit", json=body)
    assert r.status_code == 400, r.text
    assert "60000 shards" in r.text and "MAX_SHARDS_PER_JOB" in r.text
    assert "shard_size >= 60" in r.text


async def test_metadata_linked_from_outside_the_import_roots_is_refused(
    client, model_name, state_dict_file, tmp_path
) -> None:
    import tempfile
    from pathlib import Path

    outside = tempfile.mkdtemp(prefix="m-outside-", dir="/tmp")  # in no import root
    try:
        secret = Path(outside) / "secret.json"
        secret.write_text('{"architecture": "mnist_cnn"}')
        model = state_dict_file()
        (model.parent / "metadata.json").symlink_to(secret)
        r = await _register(client, model_name, "v1", model)
        assert r.status_code == 400 and "outside the allowed roots" in r.text, r.text
    finally:
        shutil.rmtree(outside)
