"""Signed checkpoints in the C2SP formats: signed-note, tlog-checkpoint and tlog-cosignature/v1.

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n``; a note is the body, a blank line, then
one ``— name base64(key hash ‖ signature)`` line per signer. The log signs with an Ed25519 note
key (type 0x01), a witness with a cosignature/v1 key (type 0x04), which also signs a timestamp.
Keys travel as the note package's strings: ``name+hash+base64(type ‖ public key)`` for verifiers,
``PRIVATE+KEY+name+hash+base64(type ‖ seed)`` for signers. Pure code, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519, COSIGNATURE_V1 = 0x01, 0x04
DASH = "\u2014"  # the em dash that starts a signature line


class NoteError(ValueError):
    """A key, note, checkpoint or signature that is malformed or does not verify."""


def _key_hash(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A public key that checks one signer's lines."""

    name: str
    alg: int
    public: bytes

    @property
    def key_hash(self) -> bytes:
        """The 4 bytes that pick this key's line out of a note."""
        return _key_hash(self.name, self.alg, self.public)

    def vkey(self) -> str:
        """The key as one line, ``name+hash+base64(type ‖ key)``."""
        b64 = base64.b64encode(bytes([self.alg]) + self.public).decode()
        return f"{self.name}+{self.key_hash.hex()}+{b64}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read a verifier key line as `just audit-key` prints it."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"a public key is name+hash+base64, got {text.strip()[:60]!r}")
        name, hash_hex, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError(f"public key {name!r}: its key is not base64") from None
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"public key {name!r}: not an Ed25519 note or cosignature key")
        key = cls(_check_name(name), raw[0], raw[1:])
        if key.key_hash.hex() != hash_hex.lower():
            raise NoteError(f"public key {name!r}: its hash does not match the key")
        return key

    def check(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` signs ``message`` under this key."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes (the log) or cosignatures (a witness)."""

    name: str
    alg: int
    seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str, alg: int = ED25519) -> Signer:
        """A new random key."""
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(_check_name(name), alg, raw)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Read a ``PRIVATE+KEY+name+hash+base64`` line."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a private key file holds one PRIVATE+KEY+name+hash+base64 line")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise NoteError("the private key is not base64") from None
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise NoteError("the private key is not an Ed25519 note or cosignature key")
        signer = cls(_check_name(parts[2]), raw[0], raw[1:])
        if signer.verifier().key_hash.hex() != parts[3].lower():
            raise NoteError("the private key's hash does not match the key")
        return signer

    def skey(self) -> str:
        """The private key as one line (keep it mode 600)."""
        v = self.verifier()
        b64 = base64.b64encode(bytes([self.alg]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{v.key_hash.hex()}+{b64}"

    def verifier(self) -> Verifier:
        """The matching public key."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return Verifier(self.name, self.alg, _raw(private.public_key()))

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log, how many entries, and the root over them."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The checkpoint's text, what the log signs."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Read a checkpoint body; NoteError names what is wrong."""
        if not body.endswith("\n"):
            raise NoteError("a checkpoint ends with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3 or not lines[0] or any(not line for line in lines):
            raise NoteError("a checkpoint is origin, size and root hash, one per line")
        size = lines[1]  # ASCII digits only: str.isdigit() also takes "²" and "١٢"
        if not (size.isascii() and size.isdigit()) or (size != "0" and size.startswith("0")):
            raise NoteError(f"checkpoint size {lines[1]!r} is not a decimal number")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            root = b""
        if len(root) != 32:
            raise NoteError("the checkpoint's root hash is not 32 bytes of base64")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]))


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a note."""

    name: str
    key_hash: bytes
    signature: bytes  # for a cosignature: 8-byte timestamp ‖ 64-byte signature

    def text(self) -> str:
        """The line as it appears in a note."""
        return f"{DASH} {self.name} {base64.b64encode(self.key_hash + self.signature).decode()}\n"


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """A note's text and its signature lines (unverified)."""
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise NoteError("a signed note is its text, a blank line, then signature lines")
    lines: list[SignatureLine] = []
    for line in sigs[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        name, _, b64 = rest.partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raw = b""
        if dash != DASH or not name or len(raw) < 5:
            raise NoteError(f"malformed signature line {line[:60]!r}")
        lines.append(SignatureLine(name, raw[:4], raw[4:]))
    return text + "\n", lines


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 key signs: a header with the time, then the checkpoint."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def sign_body(body: str, signer: Signer) -> SignatureLine:
    """The log's signature line over a checkpoint body."""
    v = signer.verifier()
    return SignatureLine(signer.name, v.key_hash, signer.sign(body.encode()))


def cosign(body: str, witness: Signer, timestamp: int) -> SignatureLine:
    """A witness's cosignature line over a checkpoint body at ``timestamp`` (Unix seconds)."""
    if witness.alg != COSIGNATURE_V1:
        raise NoteError("a cosignature needs a witness (cosignature/v1) key")
    sig = witness.sign(cosigned_message(body, timestamp))
    return SignatureLine(
        witness.name, witness.verifier().key_hash, struct.pack(">Q", timestamp) + sig
    )


def line_signs(line: SignatureLine, body: str, key: Verifier) -> bool:
    """Whether ``line`` is ``key``'s valid signature or cosignature of ``body``."""
    if line.name != key.name or line.key_hash != key.key_hash:
        return False
    if key.alg == COSIGNATURE_V1:
        if len(line.signature) != 72:
            return False
        (timestamp,) = struct.unpack(">Q", line.signature[:8])
        return key.check(cosigned_message(body, timestamp), line.signature[8:])
    return len(line.signature) == 64 and key.check(body.encode(), line.signature)


def note_text(body: str, lines: list[SignatureLine]) -> str:
    """A signed note: the body, a blank line, the signature lines."""
    return body + "\n" + "".join(line.text() for line in lines)


def open_checkpoint(
    note: str, log_key: Verifier, witnesses: list[Verifier] = ()
) -> tuple[Checkpoint, list[str]]:
    """Verify a checkpoint note: the log's signature is required; returns the checkpoint and the
    names of the given witnesses whose cosignatures verify. Raises NoteError otherwise."""
    if log_key.alg != ED25519:  # a witness's cosignature must not pass for the log's signature
        raise NoteError(f"{log_key.name} is not a log (Ed25519 note) key")
    body, lines = split_note(note)
    checkpoint = Checkpoint.parse(body)
    if not any(line_signs(line, body, log_key) for line in lines):
        raise NoteError(f"the checkpoint of size {checkpoint.size} is not signed by {log_key.name}")
    # Only cosignature/v1 keys: a note key listed as a witness would count the log's own line.
    cosigners = [
        w.name
        for w in witnesses
        if w.alg == COSIGNATURE_V1 and any(line_signs(x, body, w) for x in lines)
    ]
    return checkpoint, cosigners
