"""Keys from the command line, and the API's refusal to start exposed without one."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from api.app import create_app
from tests.e2e.conftest import app_client

pytestmark = pytest.mark.anyio
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(server_urls, *args: str, **env: str) -> subprocess.CompletedProcess:
    """A CLI or API process on the test servers, with no key in its environment."""
    full = {
        **os.environ,
        "DATABASE_URL": server_urls["database_url"],
        "REDIS_URL": server_urls["redis_url"],
    }
    for name in ("API_KEYS", "ALLOW_ANONYMOUS", "HOST"):
        full.pop(name, None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_create_key_prints_it_once_and_revoke_key_stops_it(
    platform, test_settings, server_urls, tmp_path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = run(server_urls, "cli", "create-key", name, "operator", "--reason", "ci")
    try:
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("iep_") and len(key.splitlines()) == 1
        assert "shown" in created.stderr and key not in created.stderr
        listed = run(server_urls, "cli", "keys")
        assert name in listed.stdout and "operator" in listed.stdout and key not in listed.stdout
        async with app_client(
            create_app(
                platform, test_settings.changed(security={"key_cache_ttl_s": 0}), run_relay=False
            )
        ) as c:
            assert (await c.get("/models", headers={"x-api-key": key})).status_code == 200
            assert (
                await c.get("/models")
            ).status_code == 401  # a key exists: no more anonymous use
            again = run(server_urls, "cli", "create-key", name, "admin")
            assert again.returncode == 1 and "already exists" in again.stderr
            skipped = run(server_urls, "cli", "create-key", name, "admin", "--if-absent")
            assert skipped.returncode == 0 and "nothing to do" in skipped.stdout
            revoked = run(server_urls, "cli", "revoke-key", name)
            assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
            assert (await c.get("/models", headers={"x-api-key": key})).status_code == 401
    finally:
        run(server_urls, "cli", "revoke-key", name, "--force", "--reason", "test ended")
    out = tmp_path / "keys" / "admin.key"
    name2 = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        written = run(
            server_urls, "cli", "create-key", name2, "admin", "--out", str(out), "--if-absent"
        )
        assert written.returncode == 0 and str(out) in written.stdout, written.stderr
        assert out.stat().st_mode & 0o777 == 0o600 and out.read_text().startswith("iep_")
        assert out.read_text().strip() not in written.stdout
        second = run(
            server_urls, "cli", "create-key", name2, "admin", "--out", str(out), "--if-absent"
        )
        assert second.returncode == 0 and "created before" in second.stdout
    finally:
        run(server_urls, "cli", "revoke-key", name2, "--force", "--reason", "test ended")
    for bad in (
        ["create-key", "Bad Name", "reader"],
        ["create-key", "ok", "root"],
        ["revoke-key", "nobody-at-all"],
    ):
        r = run(server_urls, "cli", *bad)
        assert (
            r.returncode == 1
            and r.stderr.startswith("error:")
            and len(r.stderr.strip().splitlines()) == 1
        ), r.stderr


def test_the_api_refuses_to_start_off_loopback_without_a_key(server_urls) -> None:
    # 192.0.2.1 is a documentation address: even a broken refusal could not listen on it.
    r = run(server_urls, "api", HOST="192.0.2.1", PORT="8765")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and "just create-key NAME admin" in lines[0]
        and "ALLOW_ANONYMOUS=1" in lines[0]
    )
