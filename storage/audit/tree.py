"""The event log's Merkle tree in PostgreSQL: a follower extends it; roots and proofs read it.

Leaf i is the i-th row of event_log in position order (positions may have gaps, leaf indices
have none); its data is the row's canonical bytes, the message the hash chain covers. Only
complete, aligned subtrees are stored, so a root or a proof for any size is O(log n) rows read
in two queries, whatever the log's size (domain.audit.merkle does the arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit import merkle
from domain.audit.integrity import row_message
from domain.errors import NotFound
from storage.audit.reader import chunks, driver

TREE_LOCK = 7_313_011  # one extender at a time (advisory, transaction-scoped)
LEAF_COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version, payload, actor, "
    "correlation_id, causation_id, trace_context, recorded_at, hash_scheme"
)
T = TypeVar("T")


class TreeTooSmall(NotFound):
    """A size or leaf beyond what the tree covers yet (the message says how far it goes)."""


async def tree_size(conn: AsyncConnection) -> int:
    """How many leaves the tree holds."""
    return int(await conn.scalar(text("SELECT coalesce(max(idx) + 1, 0) FROM log_tree_leaves")))


async def _nodes(conn: AsyncConnection, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    leaves = [i for level, i in keys if level == 0]
    inner = [(level, i) for level, i in keys if level > 0]
    found: dict[tuple[int, int], bytes] = {}
    if leaves:
        rows = await conn.execute(
            text("SELECT idx, hash FROM log_tree_leaves WHERE idx = ANY(CAST(:ix AS bigint[]))"),
            {"ix": leaves},
        )
        found.update({(0, r.idx): bytes(r.hash) for r in rows})
    if inner:
        rows = await conn.execute(
            text(
                "SELECT n.level, n.idx, n.hash FROM log_tree_nodes n JOIN unnest("
                "CAST(:lv AS smallint[]), CAST(:ix AS bigint[])) AS k(level, idx) "
                "ON n.level = k.level AND n.idx = k.idx"
            ),
            {"lv": [k[0] for k in inner], "ix": [k[1] for k in inner]},
        )
        found.update({(r.level, r.idx): bytes(r.hash) for r in rows})
    if len(found) != len(keys):
        missing = sorted(keys - found.keys())[:3]
        raise TreeTooSmall(f"the tree lacks nodes {missing} (is it behind the log?)")
    return found


async def _compute(conn: AsyncConnection, make: Callable[[merkle.Node], T]) -> T:
    """Run ``make`` over stored nodes, fetched in one round of queries."""
    found = await _nodes(conn, merkle.needed_nodes(make))
    return make(lambda level, index: found[(level, index)])


async def _within(conn: AsyncConnection, size: int) -> None:
    have = await tree_size(conn)
    if size > have:
        raise TreeTooSmall(f"size {size} is beyond the tree, which covers {have} entries so far")


async def tree_root(conn: AsyncConnection, size: int) -> bytes:
    """The root of the first ``size`` leaves."""
    await _within(conn, size)
    return await _compute(conn, lambda node: merkle.root(size, node))


async def inclusion(conn: AsyncConnection, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size``."""
    await _within(conn, size)
    return await _compute(conn, lambda node: merkle.inclusion_proof(index, size, node))


async def consistency(conn: AsyncConnection, old: int, new: int) -> list[bytes]:
    """The consistency proof from the tree of ``old`` to the tree of ``new``."""
    await _within(conn, new)
    return await _compute(conn, lambda node: merkle.consistency_proof(old, new, node))


async def leaf_of(conn: AsyncConnection, position: int) -> tuple[int, bytes] | None:
    """The leaf index and leaf hash of a log position, None when the tree lacks it."""
    row = (
        await conn.execute(
            text("SELECT idx, hash FROM log_tree_leaves WHERE position = :p"), {"p": position}
        )
    ).first()
    return (int(row.idx), bytes(row.hash)) if row else None


async def entries(conn: AsyncConnection, start: int, end: int) -> list[tuple[int, int, bytes]]:
    """(leaf index, position, leaf data) of leaves ``start`` ≤ i < ``end``, in order."""
    pg = await driver(conn)
    cols = ", ".join(f"e.{c.strip()}" for c in LEAF_COLUMNS.split(","))
    rows = await pg.fetch(
        f"SELECT l.idx, {cols} FROM log_tree_leaves l JOIN event_log e ON e.position = l.position "  # noqa: S608
        "WHERE l.idx >= $1 AND l.idx < $2 ORDER BY l.idx",
        start,
        end,
    )
    return [(int(r["idx"]), int(r["position"]), row_message(r)) for r in rows]


async def _edge(conn: AsyncConnection) -> tuple[merkle.Frontier, int]:
    """The frontier of the stored tree and the position of its last leaf (0 when empty)."""
    last = (
        await conn.execute(
            text("SELECT idx, position FROM log_tree_leaves ORDER BY idx DESC LIMIT 1")
        )
    ).first()
    if last is None:
        return merkle.Frontier(), 0
    size = int(last.idx) + 1
    keys = merkle.Frontier.edge_nodes(size)
    found = await _nodes(conn, set(keys))
    return merkle.Frontier(size, [found[k] for k in keys]), int(last.position)


async def extend_tree(conn: AsyncConnection, *, wait: bool = False, limit: int = 200_000) -> int:
    """Add the log's new rows (at most ``limit``) to the tree; returns its size.

    Runs in the caller's transaction under an advisory lock: with ``wait`` False a second
    extender returns the current size at once instead of queueing behind the first.
    """
    lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = await conn.scalar(text(f"SELECT {lock}(:k)"), {"k": TREE_LOCK})
    if got is False:
        return await tree_size(conn)
    frontier, last = await _edge(conn)
    leaves: list[tuple[int, int, bytes]] = []
    nodes: list[tuple[int, int, bytes]] = []
    async for rows in chunks(conn, after=last, columns=LEAF_COLUMNS):
        for row in rows:
            formed = frontier.push(merkle.leaf_hash(row_message(row)))
            leaves.append((formed[0][1], row["position"], formed[0][2]))
            nodes.extend(formed[1:])
        if len(leaves) >= limit:
            break
    if leaves:
        await _store(conn, leaves, nodes)
    return frontier.size


async def _store(conn: AsyncConnection, leaves: list[Any], nodes: list[Any]) -> None:
    pg = await driver(conn)
    await pg.copy_records_to_table(
        "log_tree_leaves", records=leaves, columns=["idx", "position", "hash"]
    )
    if nodes:
        await pg.copy_records_to_table(
            "log_tree_nodes", records=nodes, columns=["level", "idx", "hash"]
        )
