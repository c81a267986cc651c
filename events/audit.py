"""Events of the audit itself (area ``audit``), on the ``audit-log`` stream."""

from __future__ import annotations

from typing import ClassVar

from events.base import Event

AUDIT_STREAM_ID = "audit-log"


class AuditKeyAdopted(Event, frozen=True, kw_only=True):
    """From ``since_position`` on, every row of the log is an HMAC under the key ``key_id`` names.

    Appended (as an HMAC row itself) by the first append made with AUDIT_HMAC_KEY; with the key,
    `just audit` then requires HMAC for every later row, so a keyless re-chain shows.
    """

    area: ClassVar[str] = "audit"
    since_position: int
    key_id: str  # a fingerprint of the key (an HMAC of a constant), never the key


AuditEvent = AuditKeyAdopted
