"""The offline verifier (cli.offline): bundles and receipts built from a synthetic log with the
pure core, then tampered with; each tamper must exit 4 naming what failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from cli.offline import main
from domain.audit.integrity import row_message
from domain.audit.leaf import decode_leaf
from domain.audit.merkle import Frontier, consistency_proof, inclusion_proof, leaf_hash, root
from domain.audit.note import COSIGNATURE_V1, Checkpoint, Signer, cosign, note_text, sign_body
from domain.audit.offline.bundle import Entry, Receipt, TrailBundle, encode
from domain.audit.offline.receipt import pick_events
from events.base import Event
from events.codec import encode_event, event_type_name
from events.gates import AccuracyFigures, GateCheck, GateEvaluated, GateRequested
from events.registry import ArtifactMetadata, ModelVersionPromoted, ModelVersionRegistered

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "test/event-log"
T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SHA1, SHA2 = "a" * 64, "b" * 64
LOG = Signer.generate("test-log")
WITNESS = Signer.generate("witness-1", COSIGNATURE_V1)
OTHER = Signer.generate("test-log")  # same name, another key


def _gate(gate_id: str, verdict: str, candidate_correct: int = 960) -> GateEvaluated:
    return GateEvaluated(
        gate_id=gate_id,
        model_name="mnist",
        candidate_version="2.0.0",
        baseline_version="1.0.0",
        dataset_id="fashion_mnist_1000",
        verdict=verdict,
        checks=[
            GateCheck(
                name="accuracy",
                baseline=0.95,
                candidate=0.96,
                delta=0.01,
                threshold=-0.01,
                verdict=verdict,
            )
        ],
        accuracy=AccuracyFigures(
            images=1000,
            baseline_correct=950,
            candidate_correct=candidate_correct,
            only_baseline_correct=10,
            only_candidate_correct=20,
        ),
    )


def _registered(version: str, sha: str) -> ModelVersionRegistered:
    return ModelVersionRegistered(
        model_name="mnist",
        model_version=version,
        artifact_uri=f"file:///a/{version}.pt",
        sha256=sha,
        size_bytes=10,
        metadata=ArtifactMetadata(
            architecture="cnn", dataset="fashion_mnist", training={"epochs": 1}
        ),
    )


# (stream, actor, event): positions start at 1; position 5 is skipped (positions may have gaps).
LOG_EVENTS: list[tuple[str, str, Event]] = [
    ("model-mnist", "alice", _registered("1.0.0", SHA1)),
    ("model-mnist", "alice", ModelVersionPromoted(model_name="mnist", model_version="1.0.0")),
    (
        "model-other",
        "bob",
        ModelVersionRegistered(
            model_name="other",
            model_version="0.1",
            artifact_uri="file:///o",
            sha256=SHA1,
            size_bytes=1,
        ),
    ),
    ("model-mnist", "alice", _registered("2.0.0", SHA2)),
    (
        "gate-g1",
        "alice",
        GateRequested(
            gate_id="g1",
            model_name="mnist",
            candidate_version="2.0.0",
            baseline_version="1.0.0",
            dataset_id="fashion_mnist_1000",
        ),
    ),
    ("gate-g1", "worker", _gate("g1", "PASS")),
    (
        "model-mnist",
        "carol",
        ModelVersionPromoted(
            model_name="mnist",
            model_version="2.0.0",
            previous_prod="1.0.0",
            gate_id="g1",
            reason="better on fashion",
        ),
    ),
    ("model-other", "bob", ModelVersionPromoted(model_name="other", model_version="0.1")),
]


def make_rows(events=LOG_EVENTS) -> list[dict]:
    """The log rows of the events, as event_log stores them."""
    rows, versions = [], {}
    for i, (stream, actor, e) in enumerate(events):
        versions[stream] = versions.get(stream, 0) + 1
        rows.append(
            {
                "position": i + 1 if i < 4 else i + 2,
                "stream_id": stream,
                "stream_version": versions[stream],
                "event_id": uuid.UUID(int=100 + i),
                "event_type": event_type_name(e),
                "schema_version": type(e).schema_version,
                "actor": actor,
                "correlation_id": uuid.UUID(int=200 + i),
                "causation_id": None,
                "trace_context": None,
                "recorded_at": T0 + timedelta(minutes=10 * i),
                "hash_scheme": 2,
                "payload": encode_event(e),
            }
        )
    return rows


class Tree:
    """The log's tree in memory: every complete subtree, as storage keeps them."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.data = leaves
        self.nodes: dict[tuple[int, int], bytes] = {}
        f = Frontier()
        for d in leaves:
            for level, index, h in f.push(leaf_hash(d)):
                self.nodes[(level, index)] = h

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def note(self, size: int, signer: Signer = LOG, witnesses=(WITNESS,)) -> str:
        body = Checkpoint(ORIGIN, size, root(size, self.node)).body()
        lines = [sign_body(body, signer), *(cosign(body, w, 1_700_000_000) for w in witnesses)]
        return note_text(body, lines)

    def entry(self, index: int, size: int, proof: bool = True) -> Entry:
        p = inclusion_proof(index, size, self.node) if proof else None
        return Entry(index=index, leaf_data=self.data[index], proof=p)


ROWS = make_rows()
TREE = Tree([row_message(r) for r in ROWS])
SIZE = len(ROWS)


def full_bundle(n: int = SIZE, **note) -> TrailBundle:
    consistency = consistency_proof(n, SIZE, TREE.node) if n < SIZE else []
    return TrailBundle(
        origin=ORIGIN,
        log_key=LOG.name,
        checkpoint=TREE.note(SIZE, **note),
        complete=True,
        entries=[TREE.entry(i, SIZE, proof=False) for i in range(n)],
        consistency=consistency,
    )


def model_bundle(model: str = "mnist") -> TrailBundle:
    picked = [i for i, r in enumerate(ROWS) if r["stream_id"] in (f"model-{model}", "gate-g1")]
    return TrailBundle(
        origin=ORIGIN,
        log_key=LOG.name,
        checkpoint=TREE.note(SIZE),
        complete=False,
        entries=[TREE.entry(i, SIZE) for i in picked],
        model=model,
    )


def receipt(**changes) -> Receipt:
    r = Receipt(
        model_name="mnist",
        model_version="2.0.0",
        artifact_sha256=SHA2,
        origin=ORIGIN,
        log_key=LOG.name,
        checkpoint=TREE.note(SIZE),
        registration=TREE.entry(3, SIZE),
        gate=TREE.entry(5, SIZE),
        promotion=TREE.entry(6, SIZE),
    )
    return msgspec.structs.replace(r, **changes)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, key in (("log", LOG), ("witness", WITNESS), ("other", OTHER)):
        path = tmp_path / f"{name}.pub"
        path.write_text(key.verifier().vkey() + "\n")
        out[name] = str(path)
    return out


def run(tmp_path: Path, verb: str, doc, *flags: str) -> int:
    path = tmp_path / "doc.json"
    path.write_bytes(doc if isinstance(doc, bytes) else encode(doc))
    return main([verb, str(path), *flags])


def offline(tmp_path, doc, keys, *flags, key="log") -> int:
    return run(tmp_path, "verify-offline", doc, "--key", keys[key], *flags)


def test_a_full_bundle_verifies_and_prints_history_and_prod_at(tmp_path, keys, capsys) -> None:
    at = (T0 + timedelta(minutes=45)).isoformat()
    code = offline(
        tmp_path, full_bundle(), keys, "--model", "mnist", "--at", at, "--at", "2027-01-01"
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"verified: {SIZE} entries (complete from leaf 0)" in out
    assert "history of mnist: 6 events" in out  # its stream and the gate's two events
    assert "carol" in out and "reason: better on fashion" in out
    assert f"prod at {T0 + timedelta(minutes=45):%Y-%m-%dT%H:%M:%S}+00:00: mnist 1.0.0" in out
    assert "prod at 2027-01-01T00:00:00+00:00: mnist 2.0.0" in out


def test_without_model_it_lists_each_model_and_prod_at_for_all(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(), keys, "--at", "2027-01-01") == 0
    out = capsys.readouterr().out
    assert "prod at 2027-01-01T00:00:00+00:00: mnist 2.0.0" in out
    assert "prod at 2027-01-01T00:00:00+00:00: other 0.1" in out


def _with_entries(b: TrailBundle, entries: list[Entry]) -> TrailBundle:
    return msgspec.structs.replace(b, entries=entries)


def _changed_leaf(i: int, **fields) -> bytes:
    return row_message({**ROWS[i], **fields})


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (full_bundle, "do not hash to the checkpoint's root"),
        (
            model_bundle,
            "leaf 6 (position 8): the inclusion proof of leaf 6 does not lead to the root",
        ),
    ],
)
def test_one_changed_entry_fails(tmp_path, keys, capsys, bundle, message) -> None:
    b = bundle()
    entries = list(b.entries)
    k = next(n for n, e in enumerate(entries) if e.index == 6)  # the promotion to 2.0.0
    entries[k] = msgspec.structs.replace(entries[k], leaf_data=_changed_leaf(6, actor="mallory"))
    assert offline(tmp_path, _with_entries(b, entries), keys) == 4
    err = capsys.readouterr().err
    assert err.startswith("NOT VERIFIED:")
    assert message in err


def test_one_dropped_entry_fails_a_full_bundle(tmp_path, keys, capsys) -> None:
    b = full_bundle()
    assert offline(tmp_path, _with_entries(b, b.entries[:3] + b.entries[4:]), keys) == 4
    assert "leaf 3 is missing" in capsys.readouterr().err


def test_dropping_the_last_entry_fails_a_full_bundle(tmp_path, keys, capsys) -> None:
    b = full_bundle()
    assert offline(tmp_path, _with_entries(b, b.entries[:-1]), keys) == 4
    assert f"are not the first {SIZE - 1} of the checkpoint's {SIZE}" in capsys.readouterr().err


def test_one_dropped_entry_fails_a_model_bundle(tmp_path, keys, capsys) -> None:
    b = model_bundle()
    assert offline(tmp_path, _with_entries(b, b.entries[:2] + b.entries[3:]), keys) == 4
    assert "stream model-mnist: version 4" in capsys.readouterr().err


@pytest.mark.parametrize("bundle", [full_bundle, model_bundle])
def test_a_reordered_pair_fails(tmp_path, keys, capsys, bundle) -> None:
    b = bundle()
    e = list(b.entries)
    e[1], e[2] = e[2], e[1]
    assert offline(tmp_path, _with_entries(b, e), keys) == 4
    assert "strictly increasing leaf order" in capsys.readouterr().err


def test_a_reordered_pair_of_leaf_data_fails(tmp_path, keys, capsys) -> None:
    b = full_bundle()
    e = list(b.entries)
    e[1], e[2] = (
        msgspec.structs.replace(e[1], leaf_data=e[2].leaf_data),
        msgspec.structs.replace(e[2], leaf_data=e[1].leaf_data),
    )
    assert offline(tmp_path, _with_entries(b, e), keys) == 4
    assert "(the log's leaves are in position order)" in capsys.readouterr().err


def test_a_duplicated_entry_fails(tmp_path, keys, capsys) -> None:
    b = model_bundle()
    assert offline(tmp_path, _with_entries(b, [b.entries[0], *b.entries]), keys) == 4
    assert "without duplicates" in capsys.readouterr().err


def test_a_prefix_verifies_through_its_consistency_proof(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(5), keys, "--model", "mnist") == 0
    assert "verified: 5 entries" in capsys.readouterr().out
    bad = msgspec.structs.replace(full_bundle(5), consistency=full_bundle(4).consistency)
    assert offline(tmp_path, bad, keys) == 4
    assert "are not the first 5" in capsys.readouterr().err


def test_a_wrong_key_fails(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(), keys, key="other") == 4
    assert "is not signed by test-log" in capsys.readouterr().err


def test_a_note_signed_by_another_key_fails(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(signer=OTHER), keys) == 4
    assert "is not signed by test-log" in capsys.readouterr().err


def test_a_required_witness_must_have_cosigned(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(), keys, "--witness", keys["witness"]) == 0
    assert "cosigned by: witness-1" in capsys.readouterr().out
    assert offline(tmp_path, full_bundle(witnesses=()), keys, "--witness", keys["witness"]) == 4
    assert "no valid cosignature by witness witness-1" in capsys.readouterr().err
    assert offline(tmp_path, full_bundle(witnesses=()), keys) == 0  # not asked: not required


def test_a_forged_cosignature_fails(tmp_path, keys, capsys) -> None:
    forger = Signer(WITNESS.name, COSIGNATURE_V1, OTHER.seed)  # the witness's name, not its key
    b = full_bundle(witnesses=(forger,))
    assert offline(tmp_path, b, keys, "--witness", keys["witness"]) == 4
    assert "no valid cosignature by witness witness-1" in capsys.readouterr().err


def test_a_changed_checkpoint_fails(tmp_path, keys, capsys) -> None:
    b = full_bundle()
    body, _, sigs = b.checkpoint.partition("\n\n")
    forged = body.replace(f"\n{SIZE}\n", f"\n{SIZE - 1}\n") + "\n\n" + sigs
    assert offline(tmp_path, msgspec.structs.replace(b, checkpoint=forged), keys) == 4
    assert "not signed by" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "not a JSON trail bundle"),
        (b'{"format": "x"}', "not a trail bundle"),
        (b'{"format": "inference-platform/trail-bundle/v1"}', "malformed trail bundle"),
    ],
)
def test_a_bad_file_is_a_usage_error(tmp_path, keys, capsys, content, message) -> None:
    assert offline(tmp_path, content, keys) == 2
    assert message in capsys.readouterr().err


def test_a_bad_key_file_is_a_usage_error(tmp_path, keys, capsys) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text(LOG.skey())  # a private key is not a public key file
    assert offline(tmp_path, full_bundle(), {"log": str(bad)}) == 2
    assert "key file" in capsys.readouterr().err
    assert offline(tmp_path, full_bundle(), {"log": keys["witness"]}) == 2
    assert "is not the log's note key" in capsys.readouterr().err
    assert offline(tmp_path, full_bundle(), {"log": str(tmp_path / "none")}) == 2


def test_a_bad_time_is_a_usage_error(tmp_path, keys, capsys) -> None:
    assert offline(tmp_path, full_bundle(), keys, "--at", "yesterday") == 2
    assert "--at 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err


# Receipts


def verify_receipt(tmp_path, doc, keys, *flags, key="log") -> int:
    return run(tmp_path, "verify-receipt", doc, "--key", keys[key], *flags)


def test_pick_events_finds_the_three_events() -> None:
    recorded = [decode_leaf(row_message(r)).recorded() for r in ROWS]
    model = [r for r in recorded if r.stream_id == "model-mnist"]
    gates = [r for r in recorded if r.stream_id.startswith("gate-")]
    picked = pick_events("mnist", "2.0.0", model, gates)
    assert [picked.registration.position, picked.gate.position, picked.promotion.position] == [
        4,
        7,
        8,
    ]
    assert pick_events("mnist", "3.0.0", model, gates) is None
    assert pick_events("mnist", "1.0.0", model, gates).gate is None


def test_a_receipt_verifies_with_the_artifact(tmp_path, keys, capsys) -> None:
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"weights")
    import hashlib

    sha = hashlib.sha256(b"weights").hexdigest()
    rows = make_rows(
        [*LOG_EVENTS[:3], (LOG_EVENTS[3][0], "alice", _registered("2.0.0", sha)), *LOG_EVENTS[4:]]
    )
    tree = Tree([row_message(r) for r in rows])
    doc = Receipt(
        model_name="mnist",
        model_version="2.0.0",
        artifact_sha256=sha,
        origin=ORIGIN,
        log_key=LOG.name,
        checkpoint=tree.note(SIZE),
        registration=tree.entry(3, SIZE),
        gate=tree.entry(5, SIZE),
        promotion=tree.entry(6, SIZE),
    )
    code = verify_receipt(
        tmp_path, doc, keys, "--witness", keys["witness"], "--artifact", str(artifact)
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "receipt verified: mnist 2.0.0" in out and "gate g1 PASS" in out
    assert "sha256 matches the registration" in out
    artifact.write_bytes(b"other weights")
    assert verify_receipt(tmp_path, doc, keys, "--artifact", str(artifact)) == 4
    assert "the artifact's sha256" in capsys.readouterr().err


def test_a_receipt_verifies(tmp_path, keys, capsys) -> None:
    assert verify_receipt(tmp_path, receipt(), keys, "--witness", keys["witness"]) == 0
    assert "promoted    " in capsys.readouterr().out


def test_a_forged_gate_verdict_fails(tmp_path, keys, capsys) -> None:
    forged = row_message(
        {**ROWS[5], "payload": encode_event(_gate("g1", "PASS", candidate_correct=999))}
    )
    doc = receipt(gate=msgspec.structs.replace(TREE.entry(5, SIZE), leaf_data=forged))
    assert verify_receipt(tmp_path, doc, keys) == 4
    err = capsys.readouterr().err
    assert "the gate verdict: leaf 5" in err and "does not lead to the root" in err


def test_a_failed_gate_verdict_fails_even_when_proven(tmp_path, keys, capsys) -> None:
    events = [*LOG_EVENTS[:5], ("gate-g1", "worker", _gate("g1", "FAIL")), *LOG_EVENTS[6:]]
    tree = Tree([row_message(r) for r in make_rows(events)])
    doc = receipt(
        checkpoint=tree.note(SIZE),
        registration=tree.entry(3, SIZE),
        gate=tree.entry(5, SIZE),
        promotion=tree.entry(6, SIZE),
    )
    assert verify_receipt(tmp_path, doc, keys) == 4
    assert "gate g1's verdict is FAIL" in capsys.readouterr().err


def test_an_inconclusive_verdict_verifies_only_where_the_promotion_names_it(
    tmp_path, keys, capsys
) -> None:
    # on_inconclusive allow: the promotion names the INCONCLUSIVE gate, and the receipt says so.
    promoted = LOG_EVENTS[6][2]
    unnamed = msgspec.structs.replace(promoted, gate_id=None)
    for promotion, code in ((promoted, 0), (unnamed, 4)):
        events = [
            *LOG_EVENTS[:5],
            ("gate-g1", "worker", _gate("g1", "INCONCLUSIVE")),
            ("model-mnist", "carol", promotion),
            *LOG_EVENTS[7:],
        ]
        tree = Tree([row_message(r) for r in make_rows(events)])
        doc = receipt(
            checkpoint=tree.note(SIZE),
            registration=tree.entry(3, SIZE),
            gate=tree.entry(5, SIZE),
            promotion=tree.entry(6, SIZE),
        )
        assert verify_receipt(tmp_path, doc, keys) == code
        out = capsys.readouterr()
        if code == 0:
            assert "gate g1 INCONCLUSIVE" in out.out
        else:
            assert "gate g1's verdict is INCONCLUSIVE, not PASS" in out.err


def test_receipt_events_must_be_about_the_version_and_in_order(tmp_path, keys, capsys) -> None:
    assert verify_receipt(tmp_path, receipt(registration=TREE.entry(0, SIZE)), keys) == 4
    assert "not about mnist 2.0.0" in capsys.readouterr().err
    doc = receipt(
        model_version="1.0.0",
        registration=TREE.entry(0, SIZE),
        promotion=TREE.entry(1, SIZE),
        artifact_sha256=SHA1,
    )
    assert verify_receipt(tmp_path, doc, keys) == 4  # gate g1 is about 2.0.0, and comes after
    assert "NOT VERIFIED" in capsys.readouterr().err
    assert verify_receipt(tmp_path, receipt(gate=None), keys) == 4
    assert "names gate g1; its verdict is missing" in capsys.readouterr().err
    assert verify_receipt(tmp_path, receipt(artifact_sha256=SHA1), keys) == 4
    assert "is not the registered" in capsys.readouterr().err


def test_a_receipt_with_a_wrong_key_or_missing_witness_fails(tmp_path, keys, capsys) -> None:
    assert verify_receipt(tmp_path, receipt(), keys, key="other") == 4
    assert "not signed by" in capsys.readouterr().err
    doc = receipt(checkpoint=TREE.note(SIZE, witnesses=()))
    assert verify_receipt(tmp_path, doc, keys, "--witness", keys["witness"]) == 4
    assert "no valid cosignature by witness witness-1" in capsys.readouterr().err


def test_a_bundle_is_not_a_receipt(tmp_path, keys, capsys) -> None:
    assert verify_receipt(tmp_path, full_bundle(), keys) == 2
    assert "not a promotion receipt" in capsys.readouterr().err


# The command alone, in a process of its own: no servers, no network, no adapters imported.

FORBIDDEN = (
    "sqlalchemy",
    "asyncpg",
    "redis",
    "torch",
    "storage",
    "bootstrap",
    "settings",
    "litestar",
)


def isolated(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the servers' URLs on closed ports, and without a network where we may."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "--net", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def imported(stderr: str) -> set[str]:
    """The top-level packages `python -X importtime` reports."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_verify_offline_runs_alone_and_imports_no_adapter(tmp_path, keys) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(encode(full_bundle()))
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "cli.offline",
        "verify-offline",
        str(path),
        "--key",
        keys["log"],
        "--witness",
        keys["witness"],
        "--model",
        "mnist",
        "--at",
        "2027-01-01",
    ]
    p = isolated(cmd)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "prod at 2027-01-01T00:00:00+00:00: mnist 2.0.0" in p.stdout
    mods = imported(p.stderr)
    assert {"domain", "events", "cli"} <= mods  # the check sees the project's own imports
    assert not mods & set(FORBIDDEN), sorted(mods & set(FORBIDDEN))
