"""/log over HTTP: a client checks checkpoints and proofs with the log's public key alone."""

from __future__ import annotations

import base64

import pytest

from api.app import create_app
from domain.audit import merkle, note
from tests.conftest import isolated
from tests.e2e.conftest import app_client
from tests.integration.audit.support import lifecycle

pytestmark = pytest.mark.anyio
LOG_REDIS_DB = 12


def _b(text: str) -> bytes:
    return base64.b64decode(text)


async def test_checkpoint_proofs_and_entries_verify_with_the_public_key(test_settings) -> None:
    import bootstrap

    async with isolated(test_settings, LOG_REDIS_DB, "loghttp") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        try:
            async with app_client(create_app(p)) as c:
                assert (await c.get("/log/checkpoint")).status_code == 404
                await lifecycle(p)
                made = await c.post("/log/checkpoint")
                assert made.status_code == 201, made.text
                cp = made.json()
                key = note.Verifier.parse(cp["public_key"])
                checkpoint, _ = note.open_checkpoint(cp["note"], key)
                assert checkpoint.size == cp["size"] == 5
                assert (await c.get("/log/checkpoint")).json()["root_hash"] == cp["root_hash"]
                page = (await c.get("/log/entries", params={"start": 0, "end": 5})).json()
                leaves = [merkle.leaf_hash(_b(e["leaf_data"])) for e in page["entries"]]
                assert merkle.root_of(leaves) == checkpoint.root and page["next"] is None
                position = page["entries"][2]["position"]
                inc = (await c.get("/log/proof/inclusion", params={"position": position})).json()
                assert inc["leaf_index"] == 2 and inc["size"] == 5
                proof = [_b(x) for x in inc["proof"]]
                merkle.verify_inclusion(2, 5, leaves[2], proof, checkpoint.root)
                old = merkle.root_of(leaves[:3])
                con = (await c.get("/log/proof/consistency", params={"from": 3, "to": 5})).json()
                merkle.verify_consistency(3, 5, old, checkpoint.root, [_b(x) for x in con["proof"]])
                bad = await c.get("/log/proof/consistency", params={"from": 5, "to": 3})
                assert bad.status_code == 400 and "must not exceed" in bad.text
                beyond = await c.get("/log/proof/consistency", params={"from": 3, "to": 99})
                assert beyond.status_code == 404 and "beyond the tree" in beyond.text
                missing = await c.get("/log/proof/inclusion", params={"position": 999})
                assert missing.status_code == 404
                sig = await c.post("/log/cosignatures", json={"size": 5, "line": "— w x\n"})
                assert sig.status_code == 400, sig.text
                extra = await c.post("/log/cosignatures", json={"size": 5, "line": "x", "a": 1})
                assert extra.status_code == 400
                assert (await c.get("/log/checkpoints", params={"size": 4})).status_code == 404
                assert (await c.get("/log/checkpoints", params={"size": 5})).status_code == 200
                doc = (await c.get("/schema/openapi.json")).json()
                for path in ("/log/checkpoint", "/log/proof/inclusion", "/log/entries"):
                    ok = doc["paths"][path]["get"]["responses"]["200"]["content"]
                    assert "example" in ok["application/json"], path
        finally:
            await p.aclose()
