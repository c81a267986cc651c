"""The HMAC pin: once a key is in use, the log, the anchors and the key itself say from where.

The first row written with AUDIT_HMAC_KEY is an ``AuditKeyAdopted`` marker naming the first
HMAC position; `just anchor` and the relay's anchor carry that position as ``hmac_from``. A
table owner without the key can re-chain the log as SHA-256, but then the marker is gone or no
longer an HMAC row: with the key, or with an anchor that pins the position, that shows.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.audit.integrity import SCHEME_HMAC, key_id
from domain.audit.reports import Finding
from events.audit import AuditKeyAdopted
from storage.audit.chain import ChainCheck
from storage.event_store import adopted_since, hmac_from

__all__ = ["hmac_from", "key_findings", "pin_findings"]

CHECK = "hmac"
_marker = msgspec.json.Decoder(AuditKeyAdopted)


def _since(marker: dict[str, Any]) -> int | None:
    """The first HMAC position a marker row names (None when its payload is unreadable)."""
    return adopted_since(marker["payload"])


def key_findings(chain: ChainCheck, key: bytes | None) -> tuple[list[Finding], str]:
    """The marker's own consistency and, with the key, that the log was adopted under it."""
    marker = chain.marker
    if marker is None:
        if key and chain.checked:
            return [
                Finding(
                    CHECK,
                    None,
                    "AUDIT_HMAC_KEY is set but the log records no AuditKeyAdopted: either no "
                    "row was written with the key yet, or the log was re-chained without it "
                    "(compare with a `just anchor` line kept elsewhere)",
                )
            ], "no key adopted in the log: FINDING"
        return [], "no key adopted in the log"
    at, since = marker["position"], _since(marker)
    problems = []
    if marker["hash_scheme"] != SCHEME_HMAC:
        problems.append(
            f"the key's marker is a scheme {marker['hash_scheme']} row, not an HMAC: the log "
            "was re-chained without the key"
        )
    if since is None or since > at:
        problems.append(f"the key's marker names an impossible first HMAC position ({since})")
    elif chain.first_hmac != since:
        problems.append(
            f"the key's marker says HMAC from position {since}, but the first HMAC row is at "
            f"{chain.first_hmac}: rows from {since} on were re-chained without the key"
        )
    if key and marker["hash_scheme"] == SCHEME_HMAC:
        try:
            adopted = _marker.decode(bytes(marker["payload"])).key_id
        except msgspec.DecodeError:
            adopted = None
        if adopted != key_id(key):
            problems.append(f"the log was adopted under key {adopted}, not the given key")
    found = [Finding(CHECK, at, p) for p in problems]
    return found, f"HMAC from position {since} (marker at {at})" + (": FINDING" if found else "")


def pin_findings(chain: ChainCheck, pinned: int | None, what: str) -> list[Finding]:
    """An anchor that pins the first HMAC position must find the log's marker naming it."""
    if pinned is None:
        return []
    since = _since(chain.marker) if chain.marker is not None else None
    if since is None:
        problem = (
            f"{what} pins HMAC from position {pinned}, but the log has no AuditKeyAdopted "
            "marker (removed: the log was re-chained without the key)"
        )
    elif since != pinned:
        problem = f"{what} pins HMAC from position {pinned}, the log's marker says {since} (moved)"
    else:
        return []
    return [Finding(CHECK, pinned, problem)]
