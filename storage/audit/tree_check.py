"""The audit's checkpoint check: every signed checkpoint and the stored tree against the log.

Fed the log in position order (the audit's one pass), it recomputes the Merkle tree from the
rows themselves and compares, at each checkpoint's size, the signed root with the log's. Roots
that all match prefixes of one log are consistent with each other by construction, so the first
checkpoint that does not match is where a rewrite, a deletion or a truncation begins. The stored
tree (what proofs are served from) is compared level by level through one digest per level.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit import merkle, note
from domain.audit.reports import Finding


class CheckpointCheck:
    """Recomputes the tree while the audit reads the log; compares checkpoints and stored nodes."""

    def __init__(self, log_key: note.Verifier | None, witnesses: list[note.Verifier]) -> None:
        self.log_key, self.witnesses = log_key, witnesses
        self.frontier = merkle.Frontier()
        self.checkpoints: list[Any] = []
        self.cosignatures: dict[int, list[str]] = {}
        self.tree_size = 0
        self.findings: list[Finding] = []
        self.levels: dict[int, Any] = {}
        self.matched = 0
        self.last_position = 0
        self._next = 0  # index of the next checkpoint to reach

    async def start(self, conn: AsyncConnection) -> None:
        """Read the checkpoints and the tree's size in the audit's snapshot."""
        rows = await conn.execute(
            text("SELECT size, root, note FROM log_checkpoints ORDER BY size")
        )
        self.checkpoints = list(rows)
        for r in await conn.execute(text("SELECT size, line FROM log_cosignatures")):
            self.cosignatures.setdefault(r.size, []).append(r.line)
        self.tree_size = int(
            await conn.scalar(text("SELECT coalesce(max(idx) + 1, 0) FROM log_tree_leaves"))
        )

    def feed(self, rows: list[Any], messages: list[bytes]) -> None:
        """The next rows and their canonical bytes (leaf data)."""
        for row, message in zip(rows, messages, strict=True):
            formed = self.frontier.push(merkle.leaf_hash(message))
            if self.frontier.size <= self.tree_size:
                for level, _, h in formed:
                    digest = self.levels.get(level) or self.levels.setdefault(
                        level, hashlib.sha256()
                    )
                    digest.update(row["position"].to_bytes(8, "big") + h if level == 0 else h)
            self.last_position = row["position"]
            while self._next < len(self.checkpoints):
                cp = self.checkpoints[self._next]
                if cp.size != self.frontier.size:
                    break
                self._compare(cp, self.frontier.root(), row["position"])
                self._next += 1

    def _compare(self, cp: Any, root: bytes, position: int) -> None:
        if bytes(cp.root) == root:
            self.matched += 1
            return
        if len([f for f in self.findings if f.check == "checkpoint"]) < 5:
            self.findings.append(
                Finding(
                    "checkpoint",
                    position,
                    f"the checkpoint of size {cp.size} no longer matches the log: it signed root "
                    f"{bytes(cp.root).hex()[:16]}…, the log's first {cp.size} entries give "
                    f"{root.hex()[:16]}… (the log was changed at or before position {position})",
                ),
            )

    async def finish(self, conn: AsyncConnection) -> tuple[list[Finding], str]:
        """The findings and the check's one-line summary."""
        size = self.frontier.size
        for cp in self.checkpoints[self._next :]:
            self.findings.append(
                Finding(
                    "checkpoint",
                    None,
                    f"the checkpoint of size {cp.size} is beyond the log, which holds {size} "
                    "entries (entries were removed from its end)",
                )
            )
            break
        self.findings += self._signatures()
        self.findings += await self._stored_tree(conn)
        signed = "signatures checked" if self.log_key else "signatures NOT checked (no key file)"
        summary = (
            f"{len(self.checkpoints)} checkpoints, {self.matched} match the log ({signed}); "
            f"tree of {self.tree_size} entries "
            + ("matches" if not any(f.check == "tree" for f in self.findings) else "DIFFERS")
        )
        return self.findings, summary

    def _signatures(self) -> list[Finding]:
        found: list[Finding] = []
        for cp in self.checkpoints:
            try:
                if self.log_key is not None:
                    note.open_checkpoint(cp.note, self.log_key)
                body, _ = note.split_note(cp.note)
            except note.NoteError as exc:
                found.append(Finding("checkpoint", None, f"checkpoint of size {cp.size}: {exc}"))
                continue
            for line in self.cosignatures.get(cp.size, []):
                _, parsed = note.split_note(body + "\n" + line)
                if not any(note.line_signs(p, body, w) for p in parsed for w in self.witnesses):
                    name = parsed[0].name if parsed else "?"
                    found.append(
                        Finding(
                            "checkpoint",
                            None,
                            f"the cosignature of {name!r} on size {cp.size} does not verify "
                            "under WITNESS_KEYS",
                        )
                    )
        return found[:20]

    async def _stored_tree(self, conn: AsyncConnection) -> list[Finding]:
        """Each level's stored hashes, in index order, against those recomputed from the log."""
        if self.frontier.size < self.tree_size:
            return [
                Finding(
                    "tree",
                    None,
                    f"the stored tree holds {self.tree_size} leaves, the log only "
                    f"{self.frontier.size} rows (rows were removed)",
                )
            ]
        rows = await conn.execute(
            text(
                "SELECT 0 AS level, sha256(string_agg(int8send(position) || hash, ''::bytea "
                "ORDER BY idx)) AS digest FROM log_tree_leaves UNION ALL "
                "SELECT level, sha256(string_agg(hash, ''::bytea ORDER BY idx)) "
                "FROM log_tree_nodes GROUP BY level"
            )
        )
        stored = {r.level: bytes(r.digest) for r in rows if r.digest is not None}
        mine = {level: d.digest() for level, d in self.levels.items()}
        bad = sorted(
            level for level in stored.keys() | mine.keys() if stored.get(level) != mine.get(level)
        )
        return [
            Finding(
                "tree",
                None,
                f"the stored tree's level {level} differs from the log's "
                "(proofs served from it would not verify)",
            )
            for level in bad
        ]
