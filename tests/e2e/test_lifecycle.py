"""Demote, tag and archive: over HTTP and through the CLI verbs that `just` runs."""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def _register(client, name: str, version: str, path) -> None:
    r = await client.post(
        f"/models/{name}/versions", json={"model_version": version, "artifact_path": str(path)}
    )
    assert r.status_code == 201, r.text


async def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database.url,
        "REDIS_URL": settings.redis.url,
        "ARTIFACTS_DIR": str(settings.files.artifacts_dir),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "cli", *args]
    return await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    )


async def test_demote_tag_archive_over_http(client, model_name, state_dict_file) -> None:
    await _register(client, model_name, "v1", state_dict_file("a.pt", 1))
    await _register(client, model_name, "v2", state_dict_file("b.pt", 2))
    base = f"/models/{model_name}/versions"

    r = await client.post(f"{base}/v1/demote")
    assert r.status_code == 409 and "not prod" in r.json()["detail"]
    assert (await client.post(f"{base}/v1/promote")).status_code == 200
    r = await client.post(f"{base}/v1/demote", json={"reason": "bad outputs"})
    assert r.status_code == 200 and r.json()["status"] == "staging"
    assert (await client.get(f"/v2/models/{model_name}/ready")).status_code == 409

    r = await client.put(f"{base}/v2/tags", json={"tags": {"owner": "ml", "stage": "rc"}})
    assert r.status_code == 200 and r.json()["tags"] == {"owner": "ml", "stage": "rc"}
    r = await client.put(f"{base}/v2/tags", json={"tags": {"stage": ""}, "reason": "done"})
    assert r.json()["tags"] == {"owner": "ml"}
    r = await client.put(f"{base}/v2/tags", json={"tags": {}})
    assert r.status_code == 400 and "no tags" in r.json()["detail"]

    r = await client.post(f"{base}/v2/archive", json={"reason": "superseded"})
    assert r.status_code == 200 and r.json()["status"] == "archived"
    r = await client.post(f"{base}/v2/promote")
    assert r.status_code == 409 and "archived" in r.json()["detail"]
    assert (await client.post(f"{base}/v9/archive")).status_code == 404

    history = (await client.get(f"/models/{model_name}/history")).json()
    types = [h["event_type"] for h in history]
    assert types[-5:] == [
        "ModelVersionPromoted",
        "ModelVersionDemoted",
        "ModelVersionTagged",
        "ModelVersionTagged",
        "ModelVersionArchived",
    ]
    assert history[-4]["reason"] == "bad outputs" and history[-1]["reason"] == "superseded"


async def test_demote_tag_archive_through_the_cli(
    client, test_settings, model_name, state_dict_file
) -> None:
    await _register(client, model_name, "v1", state_dict_file("a.pt", 1))
    await _register(client, model_name, "v2", state_dict_file("b.pt", 2))
    assert (await client.post(f"/models/{model_name}/versions/v1/promote")).status_code == 200

    out = await _cli(test_settings, "tag", model_name, "v2", "owner=ml", "--reason", "triage")
    assert out.returncode == 0, out.stderr
    assert "owner=ml" in out.stdout
    out = await _cli(test_settings, "tag", model_name, "v2", "no-equals-sign")
    assert out.returncode == 1 and "KEY=VALUE" in out.stdout + out.stderr

    out = await _cli(test_settings, "archive", model_name, "v1")
    assert out.returncode == 1 and "is prod" in out.stdout + out.stderr
    out = await _cli(test_settings, "demote", model_name, "v1", "--reason", "incident 42")
    assert out.returncode == 0, out.stderr
    out = await _cli(test_settings, "archive", model_name, "v1")
    assert out.returncode == 0 and "archived" in out.stdout

    versions = {
        v["model_version"]: v for v in (await client.get(f"/models/{model_name}/versions")).json()
    }
    assert versions["v1"]["status"] == "archived" and versions["v2"]["tags"] == {"owner": "ml"}
    history = (await client.get(f"/models/{model_name}/history")).json()
    demoted = next(h for h in history if h["event_type"] == "ModelVersionDemoted")
    assert demoted["reason"] == "incident 42" and demoted["actor"] != "anonymous"
