"""export-trail and receipt from a real PostgreSQL log, verified offline by `python -m cli.offline`
with the servers' URLs on closed ports and no network (unshare --net when root)."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path

import pytest

from api.app import create_app
from domain.audit import note
from domain.audit.offline.bundle import encode
from domain.registry.commands import PromoteModelVersion, RecordRegistration
from domain.registry.handlers import change_model
from events.base import EventMetadata
from events.gates import AccuracyFigures, GateCheck, GateEvaluated, GateRequested
from tests.conftest import isolated
from tests.e2e.conftest import app_client
from tests.integration.audit.support import cli
from tests.unit.test_offline_verify import FORBIDDEN, imported
from tests.unit.test_offline_verify import isolated as offline_process

pytestmark = pytest.mark.anyio
REDIS_DB = 13
META = EventMetadata(actor="offline-test")
MODEL = "trailed"


async def _history(p, v2_sha: str) -> str:
    """v1 prod; v2 registered (sha256 ``v2_sha``), passed a gate, promoted; v3 never."""
    for version, sha in (
        ("v1", "1" * 64),
        ("v2", v2_sha),
        ("v3", "3" * 64),
    ):
        cmd = RecordRegistration(
            model_name=MODEL,
            model_version=version,
            artifact_uri=f"{MODEL}/{version}/model.pt",
            sha256=sha,
            size_bytes=10,
        )
        await change_model(cmd, META, p.uow)
    await change_model(
        PromoteModelVersion(model_name=MODEL, model_version="v1", metadata=META), META, p.uow
    )
    gate_id = str(uuid.uuid4())
    compared = {"model_name": MODEL, "candidate_version": "v2", "baseline_version": "v1"}
    check = GateCheck(
        name="accuracy", baseline=0.5, candidate=0.6, delta=0.1, threshold=0.01, verdict="PASS"
    )
    figures = AccuracyFigures(
        images=100,
        baseline_correct=50,
        candidate_correct=60,
        only_baseline_correct=0,
        only_candidate_correct=10,
    )
    events = [
        GateRequested(gate_id=gate_id, dataset_id="fashion_mnist_100", **compared),
        GateEvaluated(
            gate_id=gate_id,
            dataset_id="fashion_mnist_100",
            verdict="PASS",
            checks=[check],
            accuracy=figures,
            **compared,
        ),
    ]
    async with p.uow() as tx:
        state = await tx.gates.load(gate_id)
        await tx.gates.save(state, events, EventMetadata(actor="gate-worker"))
    await change_model(
        PromoteModelVersion(
            model_name=MODEL, model_version="v2", reason="gate passed", metadata=META
        ),
        META,
        p.uow,
    )
    return gate_id


def _verify(verb: str, path: Path, *flags: str):

    cmd = [sys.executable, "-X", "importtime", "-m", "cli.offline", verb, str(path), *flags]
    return offline_process(cmd)


async def test_export_and_receipt_from_postgres_verify_offline(
    test_settings, tmp_path: Path
) -> None:
    import bootstrap
    import bootstrap.exports

    witness = note.Signer.generate("witness-e2e", note.COSIGNATURE_V1)
    (tmp_path / "witness.pub").write_text(witness.verifier().vkey() + "\n")
    artifact = tmp_path / "v2.pt"
    artifact.write_bytes(b"the weights of v2")
    base = test_settings.changed(transparency={"witness_keys": (witness.verifier().vkey(),)})
    async with isolated(base, REDIS_DB, "offline") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        try:
            gate_id = await _history(p, hashlib.sha256(b"the weights of v2").hexdigest())
            (tmp_path / "log.pub").write_text(p.transparency.public_key() + "\n")
            key = ["--key", str(tmp_path / "log.pub")]
            # A checkpoint of the whole log, cosigned by the witness the settings list.
            cp = await p.transparency.checkpoint_now()
            body, _ = note.split_note(cp.note)
            line = note.cosign(body, witness, 1_800_000_000).text()
            assert await p.transparency.cosign(cp.size, line) == "witness-e2e"
            env = {
                "AUDIT_SIGNING_KEY_FILE": str(settings.transparency.signing_key_file),
                "WITNESS_KEYS": witness.verifier().vkey(),
            }

            full = tmp_path / "full.json"
            r = cli(p, "export-trail", str(full), **env)
            assert r.returncode == 0, r.stderr
            assert f"entries from leaf 0, checkpoint size {cp.size}" in r.stdout
            v = _verify(
                "verify-offline",
                full,
                *key,
                "--witness",
                str(tmp_path / "witness.pub"),
                "--model",
                MODEL,
                "--at",
                "2100-01-01",
            )
            assert v.returncode == 0, v.stderr[-3000:]
            assert f"verified: {cp.size} entries (complete from leaf 0)" in v.stdout
            assert "cosigned by: witness-e2e" in v.stdout
            assert f"prod at 2100-01-01T00:00:00+00:00: {MODEL} v2" in v.stdout
            assert "GateEvaluated" in v.stdout and "offline-test" in v.stdout
            assert not imported(v.stderr) & set(FORBIDDEN)

            # One changed entry of the real export fails.
            doc = json.loads(full.read_text())
            doc["entries"][1]["leaf_data"] = doc["entries"][2]["leaf_data"]
            full.write_text(json.dumps(doc))
            bad = _verify("verify-offline", full, *key)
            assert bad.returncode == 4 and "NOT VERIFIED" in bad.stderr, bad.stderr[-2000:]

            # A model's selection, each entry with its proof, up to a position.
            exports = bootstrap.exports.trail_exports(p.transparency)
            sel = await exports.export_trail(MODEL)
            assert not sel.complete and all(e.proof is not None for e in sel.entries)
            (tmp_path / "model.json").write_bytes(encode(sel))
            v = _verify("verify-offline", tmp_path / "model.json", *key, "--at", "2100-01-01")
            assert v.returncode == 0, v.stderr[-3000:]
            assert f"prod at 2100-01-01T00:00:00+00:00: {MODEL} v2" in v.stdout
            prefix = await exports.export_trail(None, to_position=4)
            assert [e.index for e in prefix.entries] == [0, 1, 2, 3] and prefix.consistency
            (tmp_path / "prefix.json").write_bytes(encode(prefix))
            v = _verify("verify-offline", tmp_path / "prefix.json", *key, "--at", "2100-01-01")
            assert v.returncode == 0 and f"{MODEL} v1" in v.stdout, v.stderr[-3000:]

            # The receipt: CLI and HTTP give the same JSON, and it verifies with the artifact.
            receipt = tmp_path / "receipt.json"
            r = cli(p, "receipt", MODEL, "v2", str(receipt), **env)
            assert r.returncode == 0, r.stderr
            v = _verify(
                "verify-receipt",
                receipt,
                *key,
                "--witness",
                str(tmp_path / "witness.pub"),
                "--artifact",
                str(artifact),
            )
            assert v.returncode == 0, v.stderr[-3000:]
            assert f"gate {gate_id} PASS" in v.stdout and "sha256 matches" in v.stdout
            assert not imported(v.stderr) & set(FORBIDDEN)
            never = cli(p, "receipt", MODEL, "v3", str(tmp_path / "v3.json"), **env)
            assert never.returncode == 1 and "v3 was never promoted" in never.stderr
            async with app_client(create_app(p, settings=settings)) as c:
                got = await c.get(f"/models/{MODEL}/versions/v2/receipt")
                assert got.status_code == 200, got.text
                assert got.json() == json.loads(receipt.read_text())
                r3 = await c.get(f"/models/{MODEL}/versions/v3/receipt")
                assert r3.status_code == 404 and "never promoted" in r3.text
                r4 = await c.get(f"/models/{MODEL}/versions/v9/receipt")
                assert r4.status_code == 404 and "no version 'v9'" in r4.text
                r5 = await c.get("/models/nosuchmodel/versions/v1/receipt")
                assert r5.status_code == 404 and "nosuchmodel" in r5.text
        finally:
            await p.aclose()
