"""Paginated lists: cursors walk every item once, the page size is bounded, bad cursors are 400."""

from __future__ import annotations

from dataclasses import replace

import pytest

from api.app import create_app
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio


async def walk(client, url: str, limit: int, **params) -> list[list[dict]]:
    """Every page of a list endpoint, following X-Next-Cursor."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(url, params=query)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = r.headers.get("x-next-cursor")
        if cursor is None:
            return pages
        assert len(pages) < 10_000, "the cursor never ends"


async def test_versions_history_models_and_jobs_are_paged(
    client, model_name, trained_artifacts
) -> None:
    for version in ("v1", "v2", "v3"):
        body = {"model_version": version, "artifact_path": str(trained_artifacts["v1"])}
        assert (await client.post(f"/models/{model_name}/versions", json=body)).status_code == 201
    assert (await client.post(f"/models/{model_name}/versions/v2/promote")).status_code == 200

    everything = (await client.get(f"/models/{model_name}/versions")).json()
    pages = await walk(client, f"/models/{model_name}/versions", 2)
    assert [len(p) for p in pages] == [2, 1]
    assert [v["model_version"] for p in pages for v in p] == ["v1", "v2", "v3"]
    assert [v for p in pages for v in p] == everything

    history = (await client.get(f"/models/{model_name}/history")).json()
    pages = await walk(client, f"/models/{model_name}/history", 1)
    assert [h for p in pages for h in p] == history and len(history) == 4

    pages = await walk(client, "/models", 7)
    mine = [m for p in pages for m in p if m["model_name"] == model_name]
    assert sorted(m["model_version"] for m in mine) == ["v1", "v2", "v3"]  # each exactly once
    assert all(len(p) <= 7 for p in pages)

    jobs = []
    for _ in range(3):
        body = {"model_name": model_name, "dataset_id": "fashion_mnist_100", "model_version": "v1"}
        r = await client.post("/batch/submit", json=body)
        assert r.status_code == 202, r.text
        jobs.append(r.json()["job_id"])
    pages = await walk(client, "/batch", 2, model_name=model_name)
    assert [len(p) for p in pages] == [2, 1]
    assert sorted(j["job_id"] for p in pages for j in p) == sorted(jobs)
    for job_id in jobs:  # no worker should spend time on them later
        assert (await client.post(f"/batch/{job_id}/cancel")).status_code == 200


async def test_the_page_size_is_bounded_and_bad_parameters_are_400(
    platform, test_settings, model_name, trained_artifacts
) -> None:
    small = test_settings.changed(api={"default_page_size": 1, "max_page_size": 2})
    async with app_client(create_app(replace(platform, settings=small), run_relay=False)) as c:
        for version in ("v1", "v2", "v3"):
            body = {"model_version": version, "artifact_path": str(trained_artifacts["v1"])}
            assert (await c.post(f"/models/{model_name}/versions", json=body)).status_code == 201
        url = f"/models/{model_name}/versions"
        assert len((await c.get(url)).json()) == 1  # DEFAULT_PAGE_SIZE
        assert (
            len((await c.get(url, params={"limit": 1000})).json()) == 2
        )  # clamped to MAX_PAGE_SIZE
        for params in (
            {"limit": 0},
            {"limit": -1},
            {"limit": "x"},
            {"cursor": "!!"},
            {"cursor": "e30"},
            {"cursor": "x" * 600},
            {"cursor": ""},
        ):
            for path in (url, "/models", f"/models/{model_name}/history", "/batch"):
                r = await c.get(path, params=params)
                assert r.status_code == 400, (path, params, r.text)
        # A cursor of one list is not a cursor of another.
        cursor = (await c.get("/models", params={"limit": 1})).headers["x-next-cursor"]
        r = await c.get(f"/models/{model_name}/history", params={"cursor": cursor})
        assert r.status_code == 400 and "cursor" in r.json()["detail"], r.text
        r = await c.get("/models/never-registered-x/versions", params={"limit": 1})
        assert r.status_code == 404
