"""The witness's decisions on fake logs, and its key and state files (no servers)."""

from __future__ import annotations

import json
import stat

import pytest

from cli import witness as process
from domain.audit import witness as w
from domain.audit.merkle import Frontier, consistency_proof, leaf_hash, root
from domain.audit.note import (
    COSIGNATURE_V1,
    Checkpoint,
    Signer,
    Verifier,
    note_text,
    open_checkpoint,
    sign_body,
)

ORIGIN = "test/log"


class Log:
    """A log's Merkle tree from its entries, with the stored subtree hashes a server keeps."""

    def __init__(self, entries: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        frontier = Frontier()
        for data in entries:
            for level, index, h in frontier.push(leaf_hash(data)):
                self.nodes[(level, index)] = h

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def checkpoint(self, size: int, origin: str = ORIGIN) -> Checkpoint:
        return Checkpoint(origin, size, root(size, self.node))

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.node)


ENTRIES = [f"event {i}".encode() for i in range(12)]
LOG = Log(ENTRIES)


def cosigned(size: int, log: Log = LOG) -> w.WitnessState:
    cp = log.checkpoint(size)
    return w.WitnessState(cp.origin, cp.size, cp.root)


def test_first_contact_cosigns_without_a_proof() -> None:
    cp = LOG.checkpoint(5)
    assert w.proof_needed(None, cp) is None
    decision = w.decide(None, cp)
    assert decision == w.Cosign(cp, first_contact=True)
    assert w.after(None, decision, "key") == w.WitnessState(ORIGIN, 5, cp.root, "key")


@pytest.mark.parametrize(("old", "new"), [(1, 2), (4, 8), (5, 12), (7, 8), (3, 11)])
def test_a_grown_log_with_a_valid_proof_is_cosigned(old: int, new: int) -> None:
    state, cp = cosigned(old), LOG.checkpoint(new)
    assert w.proof_needed(state, cp) == (old, new)
    decision = w.decide(state, cp, LOG.proof(old, new))
    assert decision == w.Cosign(cp)
    assert w.after(state, decision, None) == w.WitnessState(ORIGIN, new, cp.root)


def test_the_same_checkpoint_again_is_nothing_to_do() -> None:
    state, cp = cosigned(9), LOG.checkpoint(9)
    assert w.proof_needed(state, cp) is None
    assert w.decide(state, cp) == w.Unchanged(cp)


def test_a_truncated_log_is_refused() -> None:
    state, cp = cosigned(9), LOG.checkpoint(5)
    assert w.proof_needed(state, cp) is None
    decision = w.decide(state, cp)
    assert isinstance(decision, w.Refuse) and decision.kind == w.TRUNCATED
    assert "from 9 to 5" in decision.reason


def test_a_split_view_is_refused() -> None:
    forked = Log([*ENTRIES[:8], b"another event 8"])
    state, cp = cosigned(9), forked.checkpoint(9)
    decision = w.decide(state, cp)
    assert isinstance(decision, w.Refuse) and decision.kind == w.SPLIT_VIEW
    assert "size 9" in decision.reason


@pytest.mark.parametrize("changed", [0, 3, 4])
def test_a_rewritten_entry_is_refused_whatever_proof_the_log_offers(changed: int) -> None:
    rewritten = Log([b"forged" if i == changed else e for i, e in enumerate(ENTRIES)])
    state, cp = cosigned(5), rewritten.checkpoint(12)
    for proof in (rewritten.proof(5, 12), LOG.proof(5, 12)):
        decision = w.decide(state, cp, proof)
        assert isinstance(decision, w.Refuse) and decision.kind == w.REWRITTEN


def test_a_reordered_pair_is_refused() -> None:
    swapped = Log([*ENTRIES[:2], ENTRIES[3], ENTRIES[2], *ENTRIES[4:]])
    decision = w.decide(cosigned(6), swapped.checkpoint(10), swapped.proof(6, 10))
    assert isinstance(decision, w.Refuse) and decision.kind == w.REWRITTEN


def test_an_honest_root_with_a_garbled_proof_is_refused() -> None:
    proof = LOG.proof(5, 12)
    proof[0] = bytes(32)
    decision = w.decide(cosigned(5), LOG.checkpoint(12), proof)
    assert isinstance(decision, w.Refuse) and decision.kind == w.REWRITTEN


def test_another_origin_is_refused() -> None:
    state, cp = cosigned(5), LOG.checkpoint(9, origin="other/log")
    assert w.proof_needed(state, cp) is None
    decision = w.decide(state, cp, LOG.proof(5, 9))
    assert isinstance(decision, w.Refuse) and decision.kind == w.ORIGIN_CHANGED


def test_growth_from_an_empty_tree_needs_no_proof() -> None:
    state = w.WitnessState(ORIGIN, 0, root(0, LOG.node))
    assert w.proof_needed(state, LOG.checkpoint(3)) is None
    assert w.decide(state, LOG.checkpoint(3)) == w.Cosign(LOG.checkpoint(3))


def test_growth_without_the_proof_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="consistency proof from 5 to 9"):
        w.decide(cosigned(5), LOG.checkpoint(9))


LOG_SIGNER = Signer.generate(ORIGIN)
OTHER_SIGNER = Signer.generate(ORIGIN)


def signed(cp: Checkpoint, signer: Signer = LOG_SIGNER) -> str:
    return note_text(cp.body(), [sign_body(cp.body(), signer)])


def test_a_note_signed_by_the_log_key_is_read() -> None:
    cp = LOG.checkpoint(7)
    assert w.read_note(signed(cp), LOG_SIGNER.verifier()) == (cp, cp.body())


def test_a_note_signed_by_another_key_or_altered_is_refused() -> None:
    cp = LOG.checkpoint(7)
    for note in (signed(cp, OTHER_SIGNER), signed(cp).replace("\n7\n", "\n8\n"), "garbage"):
        decision = w.read_note(note, LOG_SIGNER.verifier())
        assert isinstance(decision, w.Refuse) and decision.kind == w.BAD_SIGNATURE


def test_the_log_key_given_pinned_or_trusted_on_first_use() -> None:
    mine, other = LOG_SIGNER.verifier().vkey(), OTHER_SIGNER.verifier().vkey()
    assert w.choose_log_key(None, mine, other) == w.KeyChoice(Verifier.parse(mine), True, False)
    assert w.choose_log_key(mine, None, other) == w.KeyChoice(Verifier.parse(mine), False, False)
    assert w.choose_log_key(mine, mine, None) == w.KeyChoice(Verifier.parse(mine), False, False)
    assert w.choose_log_key(None, None, other) == w.KeyChoice(Verifier.parse(other), True, True)
    changed = w.choose_log_key(mine, other, None)
    assert isinstance(changed, w.Refuse) and changed.kind == w.KEY_CHANGED
    with pytest.raises(w.WitnessError, match="--log-key"):
        w.choose_log_key(None, None, None)
    with pytest.raises(w.WitnessError, match="log key"):
        w.choose_log_key(None, "not a key", None)


def test_the_state_round_trips_and_bad_states_are_named() -> None:
    state = w.WitnessState(ORIGIN, 9, LOG.checkpoint(9).root, LOG_SIGNER.verifier().vkey())
    assert w.WitnessState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    good = state.to_dict()
    for bad, word in (
        ([], "object"),
        ({**good, "origin": ""}, "origin"),
        ({**good, "size": -1}, "size"),
        ({**good, "size": True}, "size"),
        ({**good, "root": "AAAA"}, "root"),
        ({**good, "root": "not base64!"}, "root"),
        ({**good, "log_key": 3}, "log_key"),
    ):
        with pytest.raises(w.WitnessError, match=word):
            w.WitnessState.from_dict(bad)


def test_witness_key_writes_a_private_file_once_and_prints_the_public_key(tmp_path, capsys) -> None:
    path = tmp_path / "w1.key"
    assert process.write_key("w1", str(path)) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = process.load_signer(str(path))
    assert signer.alg == COSIGNATURE_V1
    assert capsys.readouterr().out.strip() == signer.verifier().vkey()
    before = path.read_text()
    assert process.write_key("w1", str(path)) == 2
    assert path.read_text() == before
    assert "never overwritten" in capsys.readouterr().err


def test_a_log_key_is_not_a_witness_key(tmp_path) -> None:
    path = tmp_path / "log.key"
    path.write_text(LOG_SIGNER.skey() + "\n")
    with pytest.raises(w.WitnessError, match="not a witness key"):
        process.load_signer(str(path))


def test_the_state_folder_is_made_private_locked_and_written_whole(tmp_path) -> None:
    folder = tmp_path / "new" / "state"
    state_dir = process.StateDir(str(folder))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert state_dir.load() is None
    state = cosigned(4)
    state_dir.save(state)
    assert state_dir.load() == state
    assert [p.name for p in folder.iterdir() if p.name.startswith(".state")] == []
    with pytest.raises(w.WitnessError, match="another witness"):
        process.StateDir(str(folder))
    (folder / "state.json").write_text("{")
    with pytest.raises(w.WitnessError, match=r"state\.json"):
        state_dir.load()


def test_a_cosignature_of_a_decided_checkpoint_verifies_with_the_witness_key() -> None:
    from domain.audit.note import cosign

    witness = Signer.generate("w1", COSIGNATURE_V1)
    cp = LOG.checkpoint(12)
    decision = w.decide(cosigned(5), cp, LOG.proof(5, 12))
    assert isinstance(decision, w.Cosign)
    body = decision.checkpoint.body()
    note = note_text(body, [sign_body(body, LOG_SIGNER), cosign(body, witness, 1_700_000_000)])
    _, names = open_checkpoint(note, LOG_SIGNER.verifier(), [witness.verifier()])
    assert names == ["w1"]
