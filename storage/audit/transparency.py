"""The verifiable log's service: checkpoints, proofs, entries and cosignatures over one engine.

Entrypoints (the /log routes, `just checkpoint`, the checkpointer task) reach the tree and the
checkpoints only through this class; it owns the signing key and the witnesses' keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit import note
from domain.audit.ports import SignedCheckpoint
from domain.errors import NotFound
from storage.audit import checkpoints, tree

log = structlog.get_logger("transparency")
MAX_ENTRIES = 1000  # per page of /log/entries


@dataclass(frozen=True)
class LogPolicy:
    """Where the key lives, what the log is called, who witnesses it, how often it is signed."""

    key_file: Path
    origin: str
    witness_keys: tuple[str, ...] = ()
    every: int = 100
    interval_s: float = 60.0


class TransparencyLog:
    """Signed checkpoints and proofs of the event log's Merkle tree."""

    def __init__(self, engine: AsyncEngine, redis: aioredis.Redis, policy: LogPolicy) -> None:
        self.engine, self.redis, self.policy = engine, redis, policy

    @cached_property
    def signer(self) -> note.Signer:
        """The log's key, made on first use."""
        return checkpoints.load_signer(self.policy.key_file, self.policy.origin)

    @cached_property
    def witnesses(self) -> list[note.Verifier]:
        """The witnesses whose cosignatures are accepted."""
        return checkpoints.witness_verifiers(self.policy.witness_keys)

    def known_keys(self) -> tuple[note.Verifier | None, list[note.Verifier]]:
        """The log's public key if its key file exists (an audit never makes one), and the
        witnesses' keys."""
        try:
            log_key = note.Signer.parse(self.policy.key_file.read_text()).verifier()
        except FileNotFoundError:
            log_key = None
        return log_key, self.witnesses

    def public_key(self) -> str:
        """The log's public key line (what verifiers and witnesses are given)."""
        return self.signer.verifier().vkey()

    async def checkpoint(self, *, force: bool = False) -> SignedCheckpoint | None:
        """Extend the tree and sign a checkpoint if one is due (or, with ``force``, if it grew)."""
        p = self.policy
        async with self.engine.begin() as conn:
            made = await checkpoints.make_checkpoint(
                conn, self.signer, p.origin, every=p.every, interval_s=p.interval_s, force=force
            )
        if made is not None:
            log.info("checkpoint_signed", size=made.size, root=made.root.hex()[:16])
            await self.publish(made)
        return made

    async def checkpoint_now(self) -> SignedCheckpoint:
        """A checkpoint of the whole log as it is now (the latest, when nothing was added)."""
        await self.checkpoint(force=True)
        found = await self.latest()
        if found is None:
            raise NotFound("the log is empty: there is nothing to checkpoint")
        return found

    async def publish(self, made: SignedCheckpoint) -> None:
        """Announce a checkpoint on ``audit.checkpoints`` (entry id = its size: a retry is refused)."""
        fields = {"size": made.size, "root": made.root.hex(), "note": made.note}
        try:
            await self.redis.xadd(checkpoints.STREAM, fields, id=f"{made.size}-0", maxlen=10_000)
        except ResponseError:
            pass  # already published (same size): the stream keeps the first
        except (RedisError, OSError) as exc:
            log.warning("checkpoint_not_published", size=made.size, error=str(exc))

    async def run_once(self) -> None:
        """One pass of the checkpointer task."""
        await self.checkpoint()

    async def latest(self) -> SignedCheckpoint | None:
        """The newest checkpoint with its cosignatures."""
        async with self.engine.connect() as conn:
            return await checkpoints.latest(conn)

    async def at_size(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint of exactly ``size``."""
        async with self.engine.connect() as conn:
            return await checkpoints.at_size(conn, size)

    async def covering(self, size: int) -> SignedCheckpoint:
        """The oldest checkpoint holding at least ``size`` entries, made now when none does."""
        async with self.engine.connect() as conn:
            found = await checkpoints.covering(conn, size)
        return found or await self.checkpoint_now()

    async def inclusion(self, position: int, size: int) -> tuple[int, bytes, list[bytes], bytes]:
        """(leaf index, leaf hash, proof, root) of a log position in the tree of ``size``."""
        async with self.engine.connect() as conn:
            leaf = await tree.leaf_of(conn, position)
            if leaf is None:
                raise NotFound(f"position {position} is not in the tree (yet)")
            index, leaf_hash = leaf
            if index >= size:
                raise NotFound(f"position {position} is leaf {index}, outside size {size}")
            proof = await tree.inclusion(conn, index, size)
            return index, leaf_hash, proof, await tree.tree_root(conn, size)

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof between two sizes."""
        async with self.engine.connect() as conn:
            return await tree.consistency(conn, old, new)

    async def entries(self, start: int, end: int) -> list[tuple[int, int, bytes]]:
        """(leaf index, position, leaf data) for leaves in [start, end)."""
        async with self.engine.begin() as conn:
            return await tree.entries(conn, start, min(end, start + MAX_ENTRIES))

    async def tree_size(self) -> int:
        """How many entries the tree covers."""
        async with self.engine.connect() as conn:
            return await tree.tree_size(conn)

    async def cosign(self, size: int, line: str) -> str:
        """Keep a witness's cosignature; returns the witness's name."""
        async with self.engine.begin() as conn:
            return await checkpoints.add_cosignature(conn, size, line, self.witnesses)
