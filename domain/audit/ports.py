"""What the verifiable log offers its entrypoints (storage.audit.transparency implements it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as kept: its note carries the log's signature and every cosignature."""

    size: int
    root: bytes
    note: str
    created_at: datetime
    cosigned_by: tuple[str, ...]


class TransparencyPort(Protocol):
    """Checkpoints, proofs, entries and cosignatures of the log's Merkle tree."""

    def public_key(self) -> str:
        """The log's public key line."""
        ...

    async def latest(self) -> SignedCheckpoint | None:
        """The newest checkpoint."""
        ...

    async def at_size(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint of exactly ``size``."""
        ...

    async def covering(self, size: int) -> SignedCheckpoint:
        """The oldest checkpoint of at least ``size`` entries, made now when none is."""
        ...

    async def checkpoint_now(self) -> SignedCheckpoint:
        """A checkpoint of the whole log as it is now."""
        ...

    async def inclusion(self, position: int, size: int) -> tuple[int, bytes, list[bytes], bytes]:
        """(leaf index, leaf hash, proof, root) of a log position in the tree of ``size``."""
        ...

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof between two tree sizes."""
        ...

    async def entries(self, start: int, end: int) -> list[tuple[int, int, bytes]]:
        """(leaf index, position, leaf data) of leaves in [start, end), one page."""
        ...

    async def tree_size(self) -> int:
        """How many entries the tree covers."""
        ...

    async def cosign(self, size: int, line: str) -> str:
        """Keep a witness's cosignature of the checkpoint of ``size``; the witness's name."""
        ...
