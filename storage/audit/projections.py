"""Projection audit: rebuild every projection from the log into scratch tables, compare row by row.

The scratch tables are temporary (``pg_temp``, dropped at the end of the audit's transaction)
and always named explicitly, so the live tables are never written. One chunked pass over the
log folds every aggregate; no stream is loaded on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import JSON, MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.audit.reports import Finding
from domain.gates.aggregate import GateState
from domain.gates.aggregate import evolve as evolve_gate
from domain.gates.views import gate_row
from domain.jobs.aggregate import JobState, evolve_job, job_row
from domain.keys.aggregate import ApiKeyState, evolve_key, key_row
from domain.registry.state import ModelState, evolve
from events.keys import KEY_STREAM_PREFIX
from events.streams import GATE_STREAM_PREFIX, JOB_STREAM_PREFIX, MODEL_STREAM_PREFIX
from storage.audit.reader import chunks, driver, recorded
from storage.projections import version_row
from storage.tables import api_keys, batch_jobs, gates, model_prod, model_versions

CHECK = "projections"
MAX_ROWS = 100


def prod_row(state: ModelState) -> dict[str, Any]:
    """The model_prod row of a model (as storage.projections.write_model_projection writes it)."""
    return {
        "model_name": state.model_name,
        "model_version": state.prod,
        "since": state.prod_since,
        "prod_stack": list(state.prod_stack),
    }


@dataclass(frozen=True)
class Projector:
    """How one kind of stream folds, and which projection rows its state becomes."""

    prefix: str
    new: Callable[[str], Any]
    evolve: Callable[[Any, Any], Any]
    rows: Callable[[Any], dict[Table, list[dict[str, Any]]]]


PROJECTORS = (
    Projector(
        MODEL_STREAM_PREFIX,
        lambda name: ModelState(model_name=name),
        evolve,
        lambda s: {
            model_versions: [version_row(v) for v in s.versions.values()],
            model_prod: [prod_row(s)],
        },
    ),
    Projector(
        JOB_STREAM_PREFIX,
        lambda job_id: JobState(job_id=job_id),
        evolve_job,
        lambda s: {batch_jobs: [job_row(s)]},
    ),
    Projector(
        GATE_STREAM_PREFIX,
        lambda gate_id: GateState(gate_id=gate_id),
        evolve_gate,
        lambda s: {gates: [gate_row(s)]},
    ),
    Projector(
        KEY_STREAM_PREFIX,
        lambda key_name: ApiKeyState(key_name=key_name),
        evolve_key,
        lambda s: {api_keys: [key_row(s)]},
    ),
)
# Which stream a projection row comes from, to name a position in a finding.
STREAM_OF: dict[str, Callable[[dict[str, Any]], str]] = {
    "model_versions": lambda pk: MODEL_STREAM_PREFIX + pk["model_name"],
    "model_prod": lambda pk: MODEL_STREAM_PREFIX + pk["model_name"],
    "batch_jobs": lambda pk: JOB_STREAM_PREFIX + pk["job_id"],
    "gates": lambda pk: GATE_STREAM_PREFIX + pk["gate_id"],
    "api_keys": lambda pk: KEY_STREAM_PREFIX + pk["key_name"],
}


class ProjectionRebuild:
    """Fed the log in position order, it folds every projected stream (one pass, no per-stream reads)."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[Projector, Any]] = {}
        self.last: dict[str, int] = {}
        self._by_prefix = {p.prefix: p for p in PROJECTORS}
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
                projector = self._by_prefix.get(prefix)
                if projector is None:
                    self._skip.add(stream_id)
                    continue
                entry = states[stream_id] = (projector, projector.new(stream_id[len(prefix) :]))
            entry[0].evolve(entry[1], recorded(row))
            last[stream_id] = row["position"]

    async def compare(self, conn: AsyncConnection) -> tuple[list[Finding], dict[str, int]]:
        """Write the rebuilt rows into pg_temp.audit_<table>; findings for every difference."""
        schema = await conn.scalar(text("SELECT current_schema()"))
        rows: dict[Table, list[dict[str, Any]]] = {}
        for projector, state in self.states.values():
            for table, table_rows in projector.rows(state).items():
                rows.setdefault(table, []).extend(table_rows)
        findings: list[Finding] = []
        counts: dict[str, int] = {}
        for table in (t for p in PROJECTORS for t in _tables(p)):
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


def _tables(projector: Projector) -> list[Table]:
    """The tables a projector writes (from an empty state's rows)."""
    return list(projector.rows(projector.new("")).keys())


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
