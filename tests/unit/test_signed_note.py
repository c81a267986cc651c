"""Signed notes, checkpoints and cosignatures against the Go note package and C2SP examples."""

from __future__ import annotations

import base64
import struct

import pytest

from domain.audit.note import (
    COSIGNATURE_V1,
    DASH,
    ED25519,
    Checkpoint,
    NoteError,
    SignatureLine,
    Signer,
    Verifier,
    cosign,
    cosigned_message,
    line_signs,
    note_text,
    open_checkpoint,
    sign_body,
    split_note,
)

# golang.org/x/mod sumdb/note/note_test.go (TestNewSigner, TestSign, TestOpen).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
ENOCH_SIG = f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# C2SP signed-note.md, its example; C2SP tlog-cosignature.md, its example checkpoint and line.
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = f"This is an example message.\n\n{DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_COSIG = f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"

# A real checkpoint of the arche2025h1 staging CT log (Ed25519 log key, plus an RFC 6962 tree
# head signature line) with four witnesses' cosignature/v1 lines, as published by the log; the
# remora.n621.de witness key is also in transparency-dev/formats note/note_cosigv1_test.go.
ARCHE_VKEY = (
    "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
)
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
ARCHE_NOTE = f"""arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

{DASH} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
{DASH} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
{DASH} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
{DASH} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
{DASH} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
{DASH} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
"""

ROOT = bytes(range(32))


def test_keys_of_the_go_note_package_parse_and_print_back() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert (signer.name, signer.alg) == ("PeterNeumann", ED25519)
    assert signer.skey() == PETER_SKEY
    assert signer.verifier().vkey() == PETER_VKEY
    verifier = Verifier.parse(PETER_VKEY)
    assert verifier == signer.verifier()
    assert verifier.key_hash.hex() == "c74f20a3"
    assert Verifier.parse(FOO_VKEY).public.hex() == (
        "e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4"
    )
    # A base64 key with '+' in it (the Go skey above has one too).
    plus = Verifier.parse("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert plus.vkey() == "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    assert Verifier.parse(REMORA_VKEY).alg == COSIGNATURE_V1


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    signer = Signer.parse(PETER_SKEY)
    line = sign_body(TEXT, signer)
    assert line.text() == PETER_SIG
    assert note_text(TEXT, [line]) == TEXT + "\n" + PETER_SIG


def test_go_and_c2sp_signatures_verify_and_others_do_not() -> None:
    body, lines = split_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert body == TEXT
    peter, enoch = Verifier.parse(PETER_VKEY), Verifier.parse(ENOCH_VKEY)
    assert [line_signs(x, body, peter) for x in lines] == [True, False]
    assert [line_signs(x, body, enoch) for x in lines] == [False, True]
    assert not line_signs(lines[0], body.replace("cryptography", "cryptographY"), peter)
    body, [foo] = split_note(FOO_NOTE)
    assert body == "This is an example message.\n"
    assert line_signs(foo, body, Verifier.parse(FOO_VKEY))
    assert not line_signs(foo, "This is an example message!\n", Verifier.parse(FOO_VKEY))


def _mangled(key: str) -> list[str]:
    subs = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)]
    bumps = [key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))]
    return [k for k in subs + bumps if k != key]


@pytest.mark.parametrize("key", [PETER_VKEY])
def test_every_mangling_of_a_verifier_key_is_refused(key: str) -> None:
    # As the Go package's TestNewVerifier: every proper substring and every one-byte bump.
    for bad in _mangled(key):
        with pytest.raises(NoteError):
            Verifier.parse(bad)
    with pytest.raises(NoteError):  # wrong length, hash adjusted (Go's own case)
        Verifier.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(NoteError):  # unknown algorithm, hash adjusted
        Verifier.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_every_mangling_of_a_signer_key_is_refused() -> None:
    for bad in _mangled(PETER_SKEY):
        with pytest.raises(NoteError):
            Signer.parse(bad)


def test_generated_keys_round_trip_and_refuse_bad_names() -> None:
    for alg in (ED25519, COSIGNATURE_V1):
        s = Signer.generate("log.example/a", alg)
        assert Signer.parse(s.skey()) == s
        assert Verifier.parse(s.verifier().vkey()) == s.verifier()
        assert s.verifier().check(b"m", s.sign(b"m"))
        assert not s.verifier().check(b"n", s.sign(b"m"))
    for name in ("", "a b", "a+b", "tab\there"):
        with pytest.raises(NoteError):
            Signer.generate(name)


def test_checkpoints_round_trip_and_match_the_c2sp_example() -> None:
    cp = Checkpoint.parse(SOFA)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.body() == SOFA
    ext = Checkpoint("o", 0, ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(ext.body()) == ext
    assert ext.body() == f"o\n0\n{base64.b64encode(ROOT).decode()}\next one\next two\n"


GOOD_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"origin\n5\n{GOOD_ROOT}",  # no final newline
        f"origin\n5\n{GOOD_ROOT}\n\n",  # a blank line inside
        f"\n5\n{GOOD_ROOT}\n",  # empty origin
        "origin\n5\n",  # no root
        f"origin\n{GOOD_ROOT}\n",  # no size
        f"origin\n-5\n{GOOD_ROOT}\n",
        f"origin\n+5\n{GOOD_ROOT}\n",
        f"origin\n 5\n{GOOD_ROOT}\n",
        f"origin\n05\n{GOOD_ROOT}\n",  # leading zero
        f"origin\n0x5\n{GOOD_ROOT}\n",
        f"origin\n5.0\n{GOOD_ROOT}\n",
        f"origin\n1_000\n{GOOD_ROOT}\n",
        f"origin\n\u0661\u0662\n{GOOD_ROOT}\n",  # Arabic-Indic digits: not ASCII decimal
        f"origin\n\u00b2\n{GOOD_ROOT}\n",  # a superscript two
        "origin\n5\nnot base64!\n",
        f"origin\n5\n{GOOD_ROOT[:-1]}\n",  # bad padding
        f"origin\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31 bytes
        f"origin\n5\n{base64.b64encode(ROOT + b'x').decode()}\n",  # 33 bytes
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    "note",
    [
        TEXT,  # no signatures
        TEXT + "\n",  # a blank line and nothing after it
        TEXT + "\n" + PETER_SIG[:-1],  # no final newline
        TEXT
        + "\n"
        + f"{DASH} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace(DASH, "-"),  # a hyphen, not the em dash
        TEXT + "\n" + f"{DASH} PeterNeumann\n",  # no signature
        TEXT + "\n" + f"{DASH} PeterNeumann x08g\n",  # shorter than a key hash
        TEXT + "\n" + f"{DASH} PeterNeumann x08go/ZJ!!\n",  # not base64
        TEXT + "\n" + PETER_SIG + "\n",  # a trailing blank line
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    # Most are the Go package's TestOpen "malformed note" cases.
    with pytest.raises(NoteError):
        split_note(note)


def test_the_c2sp_cosignature_example_parses_and_its_signed_message_is_byte_exact() -> None:
    body, [line] = split_note(SOFA + "\n" + SOFA_COSIG)
    assert body == SOFA
    assert line.name == "witness.example.com/w1"
    assert struct.unpack(">Q", line.signature[:8]) == (1679315147,)
    assert len(line.signature) == 72
    assert line.text() == SOFA_COSIG
    # The signed message exactly as the spec prints it.
    assert cosigned_message(SOFA, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_a_real_cosigned_checkpoint_opens_with_its_witness() -> None:
    log, remora = Verifier.parse(ARCHE_VKEY), Verifier.parse(REMORA_VKEY)
    cp, cosigners = open_checkpoint(ARCHE_NOTE, log, [remora])
    assert (cp.origin, cp.size) == ("arche2025h1.staging.ct.transparency.dev", 1432088532)
    assert cosigners == ["remora.n621.de"]
    # The timestamp field of the transparency-dev/formats TestCosignatureTimestamp vector.
    raw = base64.b64decode(
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert struct.unpack(">Q", raw[4:12]) == (1727964367,)
    # Change the size: neither the log's signature nor the cosignature holds.
    forged = ARCHE_NOTE.replace("1432088532", "1432088533")
    with pytest.raises(NoteError):
        open_checkpoint(forged, log, [remora])
    _, lines = split_note(forged)
    assert not any(line_signs(x, forged.split("\n\n")[0] + "\n", remora) for x in lines)
    # The log's key is not a witness key, nor the other way round.
    with pytest.raises(NoteError):
        open_checkpoint(ARCHE_NOTE, remora, [])
    assert open_checkpoint(ARCHE_NOTE, log, [log])[1] == []


def _log() -> tuple[Signer, Signer, Signer, Checkpoint]:
    log = Signer.generate("inference-platform/event-log")
    w1 = Signer.generate("witness.example/one", COSIGNATURE_V1)
    w2 = Signer.generate("witness.example/two", COSIGNATURE_V1)
    return log, w1, w2, Checkpoint("inference-platform/event-log", 42, ROOT)


def test_cosignatures_round_trip_and_cover_body_and_time() -> None:
    log, w1, w2, cp = _log()
    body = cp.body()
    line = cosign(body, w1, 1_700_000_000)
    assert line_signs(line, body, w1.verifier())
    assert not line_signs(line, body, w2.verifier())
    assert not line_signs(line, Checkpoint(cp.origin, 43, ROOT).body(), w1.verifier())
    assert not line_signs(line, Checkpoint(cp.origin, 42, ROOT[::-1]).body(), w1.verifier())
    # Another timestamp in the line, same signature: refused.
    moved = SignatureLine(
        line.name, line.key_hash, struct.pack(">Q", 1_700_000_001) + line.signature[8:]
    )
    assert not line_signs(moved, body, w1.verifier())
    # Signatures of the wrong length are refused, not crashed on.
    for sig in (b"", b"\x00" * 5, line.signature[:71], line.signature + b"\x00"):
        assert not line_signs(SignatureLine(line.name, line.key_hash, sig), body, w1.verifier())
    log_line = sign_body(body, log)
    for sig in (b"\x00", log_line.signature + b"\x00", struct.pack(">Q", 1) + log_line.signature):
        bad = SignatureLine(log_line.name, log_line.key_hash, sig)
        assert not line_signs(bad, body, log.verifier())
    # A cosignature parses back from its text unchanged.
    _, [back] = split_note(body + "\n" + line.text())
    assert back == line and line_signs(back, body, w1.verifier())
    # A note key cannot cosign, and a cosignature key's line is not a log signature.
    with pytest.raises(NoteError):
        cosign(body, log, 1)
    as_log = Verifier(w1.name, ED25519, w1.verifier().public)
    assert not line_signs(line, body, as_log)


def test_open_checkpoint_requires_the_log_key_and_lists_only_valid_cosigners() -> None:
    log, w1, w2, cp = _log()
    body = cp.body()
    other_cp = Checkpoint(cp.origin, 41, ROOT).body()
    lines = [sign_body(body, log), cosign(body, w1, 7), cosign(other_cp, w2, 7)]
    note = note_text(body, lines)
    opened, cosigners = open_checkpoint(note, log.verifier(), [w1.verifier(), w2.verifier()])
    assert opened == cp
    assert cosigners == ["witness.example/one"]  # w2 cosigned another checkpoint
    assert open_checkpoint(note, log.verifier(), [])[1] == []
    # The log's own (note) key listed as a witness does not make the log its own cosigner.
    assert open_checkpoint(note, log.verifier(), [log.verifier()])[1] == []
    with pytest.raises(NoteError):  # and a witness key is not a log key
        open_checkpoint(note, w1.verifier(), [])
    # Signed only by someone else with the log's name: refused.
    impostor = Signer.generate(log.name)
    with pytest.raises(NoteError, match="not signed"):
        open_checkpoint(note_text(body, [sign_body(body, impostor)]), log.verifier())
    # Cosignatures alone do not make a checkpoint.
    with pytest.raises(NoteError):
        open_checkpoint(note_text(body, lines[1:]), log.verifier(), [w1.verifier()])
    # A log signature over another body.
    with pytest.raises(NoteError):
        open_checkpoint(note_text(body, [sign_body(other_cp, log)]), log.verifier())
    # A flipped byte in the body breaks it.
    tampered = note.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[::-1]).decode())
    with pytest.raises(NoteError):
        open_checkpoint(tampered, log.verifier(), [w1.verifier()])
    # A body that is not a checkpoint is refused even when signed.
    with pytest.raises(NoteError):
        open_checkpoint(note_text(TEXT, [sign_body(TEXT, log)]), log.verifier())
