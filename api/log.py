"""The verifiable log over HTTP: signed checkpoints, proofs, leaf data and witness cosignatures.

Hashes are standard base64, as in the checkpoints themselves (C2SP tlog-checkpoint). A client
verifies with the log's public key alone (`just audit-key`), trusting nothing the server says.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.openapi.spec import Example
from litestar.params import JSONBody, QueryParameter

from api.deps import Port
from domain.audit.ports import SignedCheckpoint, TransparencyPort
from domain.errors import InvalidInput, NotFound

Log = Port[TransparencyPort]
MAX_I64 = 2**63 - 1


def b64(raw: bytes) -> str:
    """Standard base64 text of a hash."""
    return base64.b64encode(raw).decode()


class CheckpointOut(msgspec.Struct, frozen=True):
    """A signed checkpoint: ``note`` is the whole signed note (body, blank line, signatures)."""

    origin: str
    size: int
    root_hash: str
    note: str
    created_at: datetime
    cosigned_by: list[str]
    public_key: str


class InclusionOut(msgspec.Struct, frozen=True):
    """An inclusion proof of one log position (its leaf index) in the tree of ``size``."""

    position: int
    leaf_index: int
    size: int
    leaf_hash: str
    proof: list[str]
    root_hash: str


class ConsistencyOut(msgspec.Struct, frozen=True, rename={"first": "from", "second": "to"}):
    """A consistency proof: the tree of ``from`` entries is a prefix of the tree of ``to``."""

    first: int
    second: int
    proof: list[str]


class LeafOut(msgspec.Struct, frozen=True):
    """One leaf: its index, its log position, and its data (the row's canonical bytes)."""

    index: int
    position: int
    leaf_data: str


class EntriesOut(msgspec.Struct, frozen=True):
    """A page of leaves; ask again with ``start=next`` while ``next`` is not null."""

    entries: list[LeafOut]
    next: int | None


class CosignatureIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A witness's cosignature line (C2SP tlog-cosignature/v1) of the checkpoint of ``size``."""

    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_I64)]
    line: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class CosignatureOut(msgspec.Struct, frozen=True):
    """The cosignature kept."""

    size: int
    witness: str


def checkpoint_out(c: SignedCheckpoint, log: TransparencyPort) -> CheckpointOut:
    """The response shape of a stored checkpoint."""
    origin = c.note.split("\n", 1)[0]
    return CheckpointOut(
        origin, c.size, b64(c.root), c.note, c.created_at, list(c.cosigned_by), log.public_key()
    )


POSITION = QueryParameter(ge=1, le=MAX_I64, examples=[Example(value=42)])
SIZE = QueryParameter(ge=1, le=MAX_I64, description="tree size; default: the latest checkpoint's")


class LogController(Controller):
    """Checkpoints, proofs and entries of the event log's Merkle tree (RFC 9162)."""

    path = "/log"
    tags = ["log"]

    @get("/checkpoint", summary="The latest signed checkpoint, with its witnesses' cosignatures")
    async def checkpoint(self, transparency: Log) -> CheckpointOut:
        """The newest tree head the log signed."""
        found = await transparency.latest()
        if found is None:
            raise NotFound("no checkpoint yet: the log is empty or was never checkpointed")
        return checkpoint_out(found, transparency)

    @post("/checkpoint", summary="Sign a checkpoint of the whole log now", status_code=201)
    async def checkpoint_now(self, transparency: Log) -> CheckpointOut:
        """Extend the tree to the log's head and sign it (the latest, when nothing was added)."""
        return checkpoint_out(await transparency.checkpoint_now(), transparency)

    @get("/checkpoints", summary="The checkpoint of one tree size")
    async def checkpoint_of(self, transparency: Log, size: Annotated[int, SIZE]) -> CheckpointOut:
        """A past checkpoint, by its size."""
        found = await transparency.at_size(size)
        if found is None:
            raise NotFound(f"no checkpoint of size {size}")
        return checkpoint_out(found, transparency)

    @get("/proof/inclusion", summary="Inclusion proof of a log position in a tree size")
    async def inclusion(
        self,
        transparency: Log,
        position: Annotated[int, POSITION],
        size: Annotated[int | None, SIZE] = None,
    ) -> InclusionOut:
        """Proves the row at ``position`` is a leaf of the tree of ``size``."""
        size = size or await _latest_size(transparency)
        index, leaf, proof, root = await transparency.inclusion(position, size)
        return InclusionOut(position, index, size, b64(leaf), [b64(p) for p in proof], b64(root))

    @get("/proof/consistency", summary="Consistency proof between two tree sizes")
    async def consistency(
        self,
        transparency: Log,
        first: Annotated[int, QueryParameter(name="from", ge=1, le=MAX_I64)],
        second: Annotated[int, QueryParameter(name="to", ge=1, le=MAX_I64)],
    ) -> ConsistencyOut:
        """Proves the tree of ``from`` entries is a prefix of the tree of ``to``."""
        if first > second:
            raise InvalidInput(f"from ({first}) must not exceed to ({second})")
        proof = await transparency.consistency(first, second)
        return ConsistencyOut(first, second, [b64(p) for p in proof])

    @get("/entries", summary="Leaf data by leaf index, a page at a time")
    async def entries(
        self,
        transparency: Log,
        start: Annotated[int, QueryParameter(ge=0, le=MAX_I64)] = 0,
        end: Annotated[int | None, QueryParameter(ge=1, le=MAX_I64)] = None,
    ) -> EntriesOut:
        """Leaves ``start`` ≤ i < ``end`` (at most 1000 a page)."""
        size = await transparency.tree_size()
        end = min(end if end is not None else size, size)
        if end <= start:
            return EntriesOut([], None)
        rows = await transparency.entries(start, end)
        last = rows[-1][0] + 1 if rows else start
        page = [LeafOut(i, p, b64(data)) for i, p, data in rows]
        return EntriesOut(page, last if last < end else None)

    # A cosignature proves itself (it must verify under WITNESS_KEYS): a reader's key may post.
    @post(
        "/cosignatures",
        summary="A witness posts its cosignature of a checkpoint",
        status_code=201,
        opt={"role": "reader"},
    )
    async def cosign(self, transparency: Log, data: JSONBody[CosignatureIn]) -> CosignatureOut:
        """Kept only when it verifies under a key listed in WITNESS_KEYS."""
        witness = await transparency.cosign(data.size, data.line)
        return CosignatureOut(data.size, witness)


async def _latest_size(transparency: TransparencyPort) -> int:
    found = await transparency.latest()
    if found is None:
        raise NotFound("no checkpoint yet: give size=")
    return found.size
