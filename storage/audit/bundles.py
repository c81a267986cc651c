"""Trail bundles and promotion receipts from PostgreSQL, for `just export-trail`, `just receipt`
and GET /models/{name}/versions/{version}/receipt (formats: domain.audit.offline.bundle).

Built on the log's tree and checkpoints (storage.audit.tree, the TransparencyLog); when the
latest checkpoint does not cover what is asked, one is signed on demand.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.integrity import row_message
from domain.audit.offline.bundle import Entry, Receipt, TrailBundle
from domain.audit.offline.receipt import pick_events
from domain.audit.ports import SignedCheckpoint
from domain.errors import InvalidInput, NotFound, UnknownModel
from events.streams import GATE_STREAM_PREFIX, model_stream_id
from storage.audit import tree
from storage.audit.reader import driver, recorded
from storage.audit.replay import streams_of_model
from storage.audit.transparency import TransparencyLog

PAGE = 20_000  # leaves per query of a complete export
_LEAF = ", ".join(f"e.{c.strip()}" for c in tree.LEAF_COLUMNS.split(","))


class TrailExports:
    """Builds bundles and receipts from the log's tree; signs a checkpoint when one is due."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log, self.engine = log, log.engine

    async def _covering(self, position: int) -> tuple[SignedCheckpoint, int]:
        """A checkpoint whose tree holds ``position`` and the leaves up to it (their count)."""
        for _ in range(20):  # a pass extends the tree by at most 200,000 rows
            async with self.engine.connect() as conn:
                pg = await driver(conn)
                n = await pg.fetchval(
                    "SELECT idx + 1 FROM log_tree_leaves WHERE position <= $1 "
                    "ORDER BY position DESC LIMIT 1",
                    position,
                )
                last = await pg.fetchval(
                    "SELECT position FROM log_tree_leaves ORDER BY idx DESC LIMIT 1"
                )
            if n and (last or 0) >= position:
                return await self.log.covering(n), n
            await self.log.checkpoint_now()
        raise NotFound(f"the log's tree does not reach position {position} yet; try again")

    async def _head(self, to_position: int | None) -> int:
        async with self.engine.connect() as conn:
            head = await (await driver(conn)).fetchval("SELECT max(position) FROM event_log")
        if head is None:
            raise NotFound("the event log is empty: there is nothing to export")
        if to_position is not None:
            if to_position < 1:
                raise InvalidInput(f"--to must be a position >= 1, got {to_position}")
            return min(to_position, head)
        return head

    async def export_trail(
        self, model: str | None = None, to_position: int | None = None
    ) -> TrailBundle:
        """Every entry up to ``to_position`` (default: the head), or a model's streams' entries
        with their inclusion proofs."""
        upto = await self._head(to_position)
        cp, n = await self._covering(upto)
        async with self.engine.connect() as conn:
            if model is None:
                entries = [
                    Entry(index=i, leaf_data=data)
                    for start in range(0, n, PAGE)
                    for i, _, data in await tree.entries(conn, start, min(n, start + PAGE))
                ]
                proof = await tree.consistency(conn, n, cp.size) if n < cp.size else []
            else:
                entries, proof = await self._selection(conn, model, upto, cp.size), []
        return TrailBundle(
            origin=self.log.policy.origin,
            log_key=self.log.signer.name,
            checkpoint=cp.note,
            complete=model is None,
            entries=entries,
            consistency=proof,
            model=model,
            to_position=to_position,
        )

    async def _selection(
        self, conn: AsyncConnection, model: str, upto: int, size: int
    ) -> list[Entry]:
        streams = await streams_of_model(conn, model)
        pg = await driver(conn)
        rows = await pg.fetch(
            f"SELECT l.idx, {_LEAF} FROM event_log e JOIN log_tree_leaves l "  # noqa: S608
            "ON l.position = e.position WHERE e.stream_id = ANY($1::text[]) AND e.position <= $2 "
            "AND l.idx < $3 ORDER BY l.idx",
            streams,
            upto,
            size,
        )
        if not rows:
            raise UnknownModel(model)
        return [
            Entry(
                index=r["idx"],
                leaf_data=row_message(r),
                proof=await tree.inclusion(conn, r["idx"], size),
            )
            for r in rows
        ]

    async def receipt(self, name: str, version: str) -> Receipt:
        """The evidence of ``version``'s latest promotion, proven into one checkpoint."""
        async with self.engine.connect() as conn:
            model_rows = await _rows(conn, [model_stream_id(name)])
            if not model_rows:
                raise UnknownModel(name)
            gates = [
                s for s in await streams_of_model(conn, name) if s.startswith(GATE_STREAM_PREFIX)
            ]
            gate_rows = await _rows(conn, gates, "GateEvaluated")
        events = [recorded(r) for r in model_rows]
        if not any(getattr(e.event, "model_version", None) == version for e in events):
            raise NotFound(f"model {name!r} has no version {version!r}")
        picked = pick_events(name, version, events, [recorded(r) for r in gate_rows])
        if picked is None:
            raise NotFound(f"{name} {version} was never promoted: there is no receipt to give")
        cp, _ = await self._covering(picked.promotion.position)
        by_position = {r["position"]: r for r in [*model_rows, *gate_rows]}
        async with self.engine.connect() as conn:
            proven = {}
            for what in ("registration", "gate", "promotion"):
                event = getattr(picked, what)
                if event is None:
                    proven[what] = None
                    continue
                index, _ = await tree.leaf_of(conn, event.position)
                proven[what] = Entry(
                    index=index,
                    leaf_data=row_message(by_position[event.position]),
                    proof=await tree.inclusion(conn, index, cp.size),
                )
        return Receipt(
            model_name=name,
            model_version=version,
            artifact_sha256=picked.registration.event.sha256,
            origin=self.log.policy.origin,
            log_key=self.log.signer.name,
            checkpoint=cp.note,
            **proven,
        )


async def _rows(
    conn: AsyncConnection, streams: list[str], event_type: str | None = None
) -> list[Any]:
    pg = await driver(conn)
    cols = tree.LEAF_COLUMNS
    if event_type is None:
        sql = f"SELECT {cols} FROM event_log WHERE stream_id = ANY($1::text[]) ORDER BY position"  # noqa: S608
        return await pg.fetch(sql, streams)
    sql = (
        f"SELECT {cols} FROM event_log WHERE stream_id = ANY($1::text[]) "  # noqa: S608
        "AND event_type = $2 ORDER BY position"
    )
    return await pg.fetch(sql, streams, event_type)
