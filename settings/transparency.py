"""The verifiable log: the checkpoint signing key, the log's origin, witnesses, cadence."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from settings.parse import SettingsError, number, optional, setting, whole


def _witness_keys() -> tuple[str, ...]:
    """WITNESS_KEYS: public key lines, comma- or newline-separated; ``@FILE`` reads a file's lines."""
    keys: list[str] = []
    for item in os.environ.get("WITNESS_KEYS", "").replace("\n", ",").split(","):
        item = item.strip()
        if item.startswith("@"):
            try:
                text = Path(item[1:]).expanduser().read_text()
            except OSError as exc:
                raise SettingsError(
                    f"WITNESS_KEYS: cannot read {item[1:]}: {exc.strerror}"
                ) from None
            keys.extend(line.strip() for line in text.splitlines() if line.strip())
        elif item:
            keys.append(item)
    for key in keys:
        _check_witness_key(key)
    return tuple(keys)


def _check_witness_key(key: str) -> None:
    """A cosignature/v1 public key line: name+hash+base64(0x04 ‖ 32-byte key), hash matching."""
    name, _, rest = key.partition("+")
    hash_hex, _, b64 = rest.partition("+")
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error:
        raw = b""
    if not name or len(raw) != 33 or raw[0] != 0x04:
        raise SettingsError(
            f"WITNESS_KEYS: {key[:40]!r} is not a witness public key (name+hash+base64 of a "
            "cosignature/v1 key, as `just witness-key` prints it)"
        )
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() != hash_hex.lower():
        raise SettingsError(f"WITNESS_KEYS: the hash of witness key {name!r} does not match it")


def _origin() -> str:
    origin = os.environ.get("LOG_ORIGIN") or "inference-platform/event-log"
    if any(c.isspace() or c == "+" for c in origin):
        raise SettingsError(f"LOG_ORIGIN must have no spaces or '+', not {origin!r}")
    return origin


@dataclass(frozen=True)
class TransparencySettings:
    """Signed checkpoints of the log and its witnesses ([audit](docs/audit.md#checkpoints-a-history-an-outsider-can-verify))."""  # noqa: E501

    signing_key_file: Path | None = setting(
        "AUDIT_SIGNING_KEY_FILE",
        lambda: (
            Path(p).expanduser().resolve() if (p := optional("AUDIT_SIGNING_KEY_FILE")) else None
        ),
        "`STATE_DIR/audit-signing.key`",
        "The log's Ed25519 checkpoint key (a `PRIVATE+KEY+…` line), made with mode 600 on first "
        "use when missing; `just audit-key` prints its public key.",
    )
    log_origin: str = setting(
        "LOG_ORIGIN",
        _origin,
        "`inference-platform/event-log`",
        "The first line of every checkpoint and the signing key's name: one per log.",
    )
    witness_keys: tuple[str, ...] = setting(
        "WITNESS_KEYS",
        _witness_keys,
        "unset",
        "Witnesses' public keys (`name+hash+base64`, comma-separated, or `@FILE`): only their "
        "cosignatures are accepted and shown.",
    )
    checkpoint_every_events: int = whole(
        "CHECKPOINT_EVERY_EVENTS", 100, "Sign a checkpoint once the log grew by this many events."
    )
    checkpoint_interval_s: float = number(
        "CHECKPOINT_INTERVAL_S",
        60.0,
        "…or once this long passed since the last one and the log grew at all.",
    )
