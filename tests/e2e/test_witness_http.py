"""The witness against a real API process: it cosigns a growing log, then refuses the table
owner's truncated log, rewritten entry and split view, re-signed with the platform's own key.

The attacker owns everything but the witness: the database (triggers off as its owner), the
server and its signing key. The witness runs as its own process with no database or Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import text

from cli.processes import free_port, stop_process, wait_healthy
from domain.audit import note
from tests.conftest import ROOT, isolated
from tests.integration.audit.support import lifecycle, register

pytestmark = pytest.mark.anyio
WITNESS_REDIS_DB = 6
OPERATOR, READER = "op-" + "k" * 20, "wit-" + "r" * 20
TREE_TABLES = ("log_tree_leaves", "log_tree_nodes", "log_cosignatures", "log_checkpoints")
# The witness is given no database and no Redis it could reach.
NOWHERE = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    "REDIS_URL": "redis://127.0.0.1:9",
}


def witness_command(url: str, tmp: Path, *flags: str) -> tuple[list[str], dict[str, str]]:
    """The witness's command line and environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "info", **NOWHERE}
    args = ["witness", url, "--key", str(tmp / "w1.key"), "--state", str(tmp / "state"), *flags]
    return [sys.executable, "-m", "cli", *args], env


def run_witness(url: str, tmp: Path, *flags: str) -> tuple[int, list[dict], str]:
    """``python -m cli witness URL --once``: exit code, its JSON log lines, stderr."""
    command, env = witness_command(url, tmp, "--once", *flags)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return done.returncode, lines, done.stderr


def loop_alerts(url: str, tmp: Path, count: int) -> list[dict]:
    """The first ``count`` refusals of a witness polling every 0.1 s (stopped after them)."""
    command, env = witness_command(url, tmp, "--api-key", READER, "--interval", "0.1")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    guard = threading.Timer(60, proc.kill)  # a silent witness must not hang the test
    guard.start()
    alerts: list[dict] = []
    try:
        for line in proc.stdout:
            if line.startswith("{") and (entry := json.loads(line))["event"] == "witness_refused":
                alerts.append(entry)
                if len(alerts) == count:
                    break
    finally:
        guard.cancel()
        stop_process(proc)
    return alerts


async def witness(url: str, tmp: Path, *flags: str) -> tuple[int, list[dict], str]:
    """The witness run in a thread (the test's event loop keeps its connections)."""
    return await anyio.to_thread.run_sync(run_witness, url, tmp, *flags)


def state(tmp: Path) -> dict:
    return json.loads((tmp / "state" / "state.json").read_text())


async def tamper(engine, *sql: tuple[str, dict]) -> None:
    """As the tables' owner: change the log, drop the tree and checkpoints above a size."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(7313011)"))  # the tree's lock
        triggers = [("event_log", "event_log_append_only")]
        triggers += [(t, f"{t}_append_only") for t in TREE_TABLES]
        for table, trigger in triggers:
            await conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
        for statement, params in sql:
            await conn.execute(text(statement), params)
        for table, trigger in triggers:
            await conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))


def rebuild_above(size: int) -> list[tuple[str, dict]]:
    """Forget the tree (the server rebuilds it from the log) and every checkpoint above ``size``."""
    return [
        ("DELETE FROM log_tree_leaves", {}),
        ("DELETE FROM log_tree_nodes", {}),
        ("DELETE FROM log_cosignatures WHERE size > :s", {"s": size}),
        ("DELETE FROM log_checkpoints WHERE size > :s", {"s": size}),
    ]


def start_api(env: dict[str, str]) -> subprocess.Popen:
    """``python -m api`` with ``env``."""
    return subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env)


async def test_the_witness_cosigns_growth_and_refuses_a_truncated_rewritten_or_split_log(
    test_settings, tmp_path
) -> None:
    import bootstrap

    log_signer = note.Signer.generate("inference-platform/event-log")
    (tmp_path / "log.key").write_text(log_signer.skey() + "\n")
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(log_signer.verifier().vkey() + "\n")
    witness_key = [sys.executable, "-m", "cli", "witness-key", "w1", str(tmp_path / "w1.key")]
    made = await anyio.run_process(
        witness_key, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    w1 = note.Verifier.parse(made.stdout.decode().strip())
    async with isolated(test_settings, WITNESS_REDIS_DB, "witness") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        await lifecycle(p)  # 5 events before the server starts: its first checkpoint is of 5
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": settings.database.url,
            "REDIS_URL": settings.redis.url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WARM_UP": "0",
            "API_WORKERS": "1",
            "LOG_LEVEL": "warning",
            "API_KEYS": f"op:{OPERATOR}:operator,wit:{READER}:reader",
            "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "log.key"),
            "WITNESS_KEYS": w1.vkey(),
            "CHECKPOINT_EVERY_EVENTS": "1000000",  # only this test's POSTs sign later ones
            "CHECKPOINT_INTERVAL_S": "3600",
        }
        proc = await anyio.to_thread.run_sync(start_api, env)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_healthy(url, proc, timeout_s=120)
            async with httpx.AsyncClient(
                base_url=url, headers={"X-API-Key": OPERATOR}, timeout=30
            ) as c:

                async def checkpoint() -> dict:
                    r = await c.post("/log/checkpoint")
                    assert r.status_code == 201, r.text
                    return r.json()

                assert (await checkpoint())["size"] == 5
                # No API key: the API's 401 is an HTTP error, exit 1, naming the URL.
                code, _, err = await witness(url, tmp_path)
                assert code == 1 and f"{url}/log/checkpoint answered 401" in err, err
                assert not (tmp_path / "state" / "state.json").exists()

                # First contact: the log's key is trusted on first use, with a warning.
                code, lines, err = await witness(url, tmp_path, "--api-key", READER)
                assert code == 0, err
                events = {x["event"] for x in lines}
                assert {"witness_log_key_pinned", "witness_cosigned"} <= events, lines
                first = (await c.get("/log/checkpoint")).json()
                assert first["cosigned_by"] == ["w1"]
                _, names = note.open_checkpoint(first["note"], log_signer.verifier(), [w1])
                assert names == ["w1"]
                assert state(tmp_path)["size"] == 5
                assert state(tmp_path)["log_key"] == log_signer.verifier().vkey()

                # The same checkpoint again: nothing to do, no second cosignature.
                code, lines, err = await witness(url, tmp_path, "--api-key", READER)
                assert code == 0 and "witness_unchanged" in {x["event"] for x in lines}, err
                again = (await c.get("/log/checkpoint")).json()
                assert again["note"] == first["note"]

                # Growth: cosigned after checking the consistency proof from 5.
                await register(p, "audited", "v3", 3)
                await register(p, "audited", "v4", 4)
                assert (await checkpoint())["size"] == 7
                code, lines, err = await witness(
                    url, tmp_path, "--api-key", READER, "--log-key", str(log_pub)
                )
                assert code == 0, err
                assert (await c.get("/log/checkpoint")).json()["cosigned_by"] == ["w1"]
                cosigned = state(tmp_path)
                assert cosigned["size"] == 7

                async def refused(kind: str) -> None:
                    code, lines, err = await witness(url, tmp_path, "--api-key", READER)
                    alerts = [x for x in lines if x["event"] == "witness_refused"]
                    assert code == 4, (code, lines, err)
                    assert [a["kind"] for a in alerts] == [kind], lines
                    assert alerts[0]["level"] == "error"
                    assert alerts[0]["cosigned_size"] == 7
                    assert alerts[0]["cosigned_root"] == cosigned["root"]
                    assert state(tmp_path) == cosigned  # never past a refusal
                    latest = (await c.get("/log/checkpoint")).json()
                    assert latest["cosigned_by"] == []

                # Split view: entry 2 rewritten, the tree rebuilt, size 7 signed again.
                pos = (await c.get("/log/entries", params={"start": 2, "end": 3})).json()
                second = pos["entries"][0]["position"]
                await tamper(
                    p.engine,
                    ("UPDATE event_log SET actor = 'mallory' WHERE position = :p", {"p": second}),
                    *rebuild_above(5),
                )
                split = await checkpoint()
                assert split["size"] == 7 and split["root_hash"] != cosigned["root"]
                await refused("split_view")

                # The rewritten log grows on: its proof from 7 does not reach the cosigned root.
                await register(p, "audited", "v5", 5)
                assert (await checkpoint())["size"] == 8
                await refused("rewritten")

                # Truncated: the last four entries deleted, a checkpoint of 4 signed.
                pos = (await c.get("/log/entries", params={"start": 4, "end": 5})).json()
                fifth = pos["entries"][0]["position"]
                await tamper(
                    p.engine,
                    ("DELETE FROM event_log WHERE position >= :p", {"p": fifth}),
                    *rebuild_above(3),
                )
                assert (await checkpoint())["size"] == 4
                await refused("truncated")

                # Polling on, it keeps refusing and never moves its state past the refusal.
                alerts = await anyio.to_thread.run_sync(loop_alerts, url, tmp_path, 3)
                assert [a["kind"] for a in alerts] == ["truncated"] * 3
                assert state(tmp_path) == cosigned
        finally:
            stop_process(proc)
            await p.aclose()


def test_an_unreachable_api_exits_1_naming_the_url(tmp_path) -> None:
    note_key = note.Signer.generate("w1", note.COSIGNATURE_V1)
    (tmp_path / "w1.key").write_text(note_key.skey() + "\n")
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run_witness(url, tmp_path)
    assert code == 1 and f"cannot reach {url}/log/checkpoint" in err, err
