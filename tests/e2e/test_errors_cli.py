"""Errors that help from the command line: a usage error is exit 2 with the verb's usage, an
unknown model names the known ones, a taken port names the variable that moves the API."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


def run(server_urls, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m <args>`` on the test servers, with no key in its environment."""
    full = {
        **os.environ,
        "DATABASE_URL": server_urls["database_url"],
        "REDIS_URL": server_urls["redis_url"],
        "LOG_LEVEL": "warning",
    }
    for name in ("API_KEYS", "ALLOW_ANONYMOUS", "HOST", "PORT", "API_WORKERS"):
        full.pop(name, None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_version_is_a_usage_error_with_the_verbs_usage(server_urls) -> None:
    r = run(server_urls, "cli", "promote", "mnist_cnn")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("usage: python -m cli promote "), r.stderr
    assert r.stderr.rstrip().endswith("error: missing MODEL_VERSION"), r.stderr
    assert "rollback" not in r.stderr  # the verb's usage, not every verb's


async def test_an_unknown_model_in_the_cli_names_the_closest(
    server_urls, client, model_name, state_dict_file
) -> None:
    body = {"model_version": "v1", "artifact_path": str(state_dict_file("v1.pt"))}
    assert (await client.post(f"/models/{model_name}/versions", json=body)).status_code == 201
    for verb in (("promote", model_name[:-1], "v1"), ("history", model_name[:-1])):
        r = run(server_urls, "cli", *verb)
        line = r.stderr.strip()
        assert r.returncode == 1 and len(line.splitlines()) == 1, (verb, r.stderr)
        assert line.startswith(f"error: unknown model '{model_name[:-1]}' (known: "), line
        assert line.endswith(f"; did you mean {model_name}?"), line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_names_a_free_one_to_start_on(server_urls, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run(server_urls, "api", PORT=str(port), API_WORKERS=workers)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    found = re.fullmatch(
        rf"error: cannot start the API: 127\.0\.0\.1:{port} is in use; "
        r"start it on another port with PORT=(\d+) just serve\n",
        r.stderr,
    )
    assert found and int(found[1]) != port, r.stderr
