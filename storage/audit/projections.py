"""Projection audit: rebuild every projection from the log into scratch tables, compare row by row.

The scratch tables are temporary (``pg_temp``, dropped at the end of the audit's transaction)
and always named explicitly, so the live tables are never written. One chunked pass over the
log folds every aggregate; no stream is loaded on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import JSON, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.reports import Finding
from storage.audit.reader import chunks, driver, recorded
from storage.projections import PROJECTIONS
from storage.repository import Projection

CHECK = "projections"
MAX_ROWS = 100


def _stream_of(projection: Projection) -> Callable[[dict[str, Any]], str]:
    """The stream a projection row's primary key comes from."""
    return lambda pk: projection.prefix + pk[projection.key]


# Which stream a projection row comes from, to name a position in a finding.
STREAM_OF = {t.name: _stream_of(p) for p in PROJECTIONS for t in p.tables}


class ProjectionRebuild:
    """Fed the log in position order, it folds every projected stream (one pass, no per-stream reads)."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[Projection, Any]] = {}
        self.last: dict[str, int] = {}
        self._by_prefix = {p.prefix: p for p in PROJECTIONS}
        self._skip: set[str] = set()

    def feed(self, rows: list[Any]) -> None:
        """Fold the next rows."""
        states, last = self.states, self.last
        for row in rows:
            stream_id = row["stream_id"]
            entry = states.get(stream_id)
            if entry is None:
                if stream_id in self._skip:
                    continue
                prefix = stream_id.split("-", 1)[0] + "-"
                projection = self._by_prefix.get(prefix)
                if projection is None:
                    self._skip.add(stream_id)
                    continue
                empty = projection.fold(stream_id[len(prefix) :], [])
                entry = states[stream_id] = (projection, empty)
            entry[0].evolve(entry[1], recorded(row))
            last[stream_id] = row["position"]

    async def compare(self, conn: AsyncConnection) -> tuple[list[Finding], dict[str, int]]:
        """Write the rebuilt rows into pg_temp.audit_<table>; findings for every difference."""
        schema = await conn.scalar(text("SELECT current_schema()"))
        rows: dict[Table, list[dict[str, Any]]] = {}
        for projection, state in self.states.values():
            for table, table_rows in projection.rows(state).items():
                rows.setdefault(table, []).extend(table_rows)
        findings: list[Finding] = []
        counts: dict[str, int] = {}
        for table in (t for p in PROJECTIONS for t in p.tables):
            scratch = _scratch(table)
            await conn.execute(text(f'DROP TABLE IF EXISTS pg_temp."{scratch.name}"'))
            await conn.execute(
                text(
                    f'CREATE TEMP TABLE "{scratch.name}" '
                    f'(LIKE "{schema}"."{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP'
                )
            )
            if rows.get(table):
                await _copy(conn, table, scratch.name, rows[table])
            counts[table.name] = len(rows.get(table, []))
            findings += await _differences(conn, schema, table, scratch.name, self.last)
        return findings, counts


async def check_projections(
    conn: AsyncConnection, until: int | None = None
) -> tuple[list[Finding], dict[str, int]]:
    """Rebuild every projection from the log up to ``until`` and compare it with the live one."""
    rebuild = ProjectionRebuild()
    async for rows in chunks(conn, until=until):
        rebuild.feed(rows)
    return await rebuild.compare(conn)


async def _copy(conn: AsyncConnection, table: Table, name: str, rows: list[dict]) -> None:
    """COPY rows into a scratch table (JSON columns encoded as the live writer's JSONB does)."""
    cols = [c.name for c in table.columns]
    # SQLAlchemy stores Python None in a JSON column as JSON null, so the scratch row must too.
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    records = [tuple(_json(r.get(c)) if c in json_cols else r.get(c) for c in cols) for r in rows]
    pg = await driver(conn)
    await pg.copy_records_to_table(name, records=records, columns=cols, schema_name="pg_temp")


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _scratch(table: Table) -> Table:
    return table.to_metadata(MetaData(), schema="pg_temp", name=f"audit_{table.name}")


async def _differences(
    conn: AsyncConnection, schema: str, table: Table, scratch: str, last: dict[str, int]
) -> list[Finding]:
    """Rows missing on either side or differing in any column, as findings."""
    pk = [c.name for c in table.primary_key.columns]
    cols = [c.name for c in table.columns]
    on = " AND ".join(f'l."{c}" = s."{c}"' for c in pk)
    keys = ", ".join(f'coalesce(l."{c}", s."{c}") AS "{c}"' for c in pk)
    diffs = ", ".join(f'(l."{c}" IS DISTINCT FROM s."{c}") AS "d_{c}"' for c in cols)
    live_pk = f'l."{pk[0]}"'
    # Identifiers come from the table definitions, never from input.
    source = f'"{schema}"."{table.name}" l FULL JOIN pg_temp."{scratch}" s ON {on}'
    picked = f'{keys}, {live_pk} IS NULL AS live_missing, s."{pk[0]}" IS NULL AS extra, {diffs}'
    where = f"ROW(l.*) IS DISTINCT FROM ROW(s.*) LIMIT {MAX_ROWS}"
    sql = f"SELECT {picked} FROM {source} WHERE {where}"  # noqa: S608
    findings = []
    for r in (await conn.execute(text(sql))).mappings():
        key = {c: r[c] for c in pk}
        stream = STREAM_OF.get(table.name, lambda _: "")(key)
        where = f"{table.name} row {tuple(key.values())!r}"
        if r["live_missing"]:
            problem = f"{where} is missing from the live table"
        elif r["extra"]:
            problem = f"{where} is in the live table but no event in the log makes it"
        else:
            changed = [c for c in cols if r[f"d_{c}"]]
            problem = f"{where} differs from the log in {', '.join(changed)}"
        position = last.get(stream)
        suffix = f" (last event of {stream} at position {position})" if position else ""
        findings.append(Finding(CHECK, position, problem + suffix))
    return findings
