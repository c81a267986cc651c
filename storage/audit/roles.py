"""Two PostgreSQL roles: the owner migrates; the application may only INSERT and SELECT on event_log.

Run by the owner after every migration (idempotent), so tables added later are granted too.
The application role can then neither change nor delete a logged event, nor disable the
append-only trigger (only a table's owner can), even if the API is compromised. Nor can it
disable the guards on the tables authentication and serving read (GUARDED, migration 0010).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.audit.reader import driver

log = structlog.get_logger("roles")
APPEND_ONLY = (
    "event_log",
    "audit_runs",
    "log_tree_leaves",
    "log_tree_nodes",
    "log_checkpoints",
    "log_cosignatures",
)
READ_ONLY = ("event_log_json", "alembic_version")
# Guarded by the owner's triggers (migration 0010): rows must match the log. TRUNCATE would
# skip the row triggers, so the application role never holds it there.
GUARDED = ("api_keys", "model_prod", "model_versions", "console_sessions")


async def grant_app_role(owner: AsyncEngine, app_url: URL) -> list[str]:
    """Create the application role if it is missing (when the owner may), and grant it.

    Returns notes for the operator; an app role equal to the owner needs nothing.
    """
    role = app_url.username
    async with owner.begin() as conn:
        pg = await driver(conn)
        me = await pg.fetchval("SELECT current_user")
        if not role or role == me:
            return [f"the application connects as the owner ({me}); one role, no grants"]
        notes = []
        if not await pg.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            if not await pg.fetchval(
                "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ):
                raise PermissionError(
                    f"role {role!r} does not exist and {me!r} may not create it; as a superuser: "
                    f"CREATE ROLE {role} LOGIN PASSWORD '...'; then migrate again"
                )
            create = await pg.fetchval(
                "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                role,
                app_url.password or "",
            )
            await pg.execute(create)
            notes.append(f"created role {role}")
        schema = await pg.fetchval("SELECT current_schema()")
        tables = [
            r["tablename"]
            for r in await pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        ]
        sequence = await pg.fetchval("SELECT pg_get_serial_sequence('event_log', 'position')")
        q = await pg.fetchval("SELECT format('%I', $1::text)", role)
        statements = [f"GRANT USAGE ON SCHEMA {schema} TO {q}"]
        for t in tables:
            if t in APPEND_ONLY:
                statements.append(f"GRANT SELECT, INSERT ON {t} TO {q}")
                statements.append(
                    f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {t} FROM {q}"
                )
            elif t in READ_ONLY:
                statements.append(f"GRANT SELECT ON {t} TO {q}")
            else:
                statements.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {q}")
            if t in GUARDED:
                statements.append(f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON {t} FROM {q}")
        statements.append(f"GRANT SELECT ON event_log_json TO {q}")
        # nextval only: positions are taken before the insert so that the hash covers them.
        statements.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {q}")
        if "audit_runs" in tables:  # the console's audit runs (migration 0009): appended only
            runs = await pg.fetchval("SELECT pg_get_serial_sequence('audit_runs', 'run_id')")
            statements.append(f"GRANT USAGE ON SEQUENCE {runs} TO {q}")
        for sql in statements:
            await pg.execute(sql)
        owned = await pg.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tableowner = $2 "
            "AND tablename = ANY($3::text[]) ORDER BY tablename",
            schema,
            role,
            list(APPEND_ONLY + GUARDED),
        )
        for r in owned:
            notes.append(f"warning: {role} owns {r['tablename']}, so it can disable its triggers")
        notes.append(f"granted {role}: SELECT, INSERT on event_log; read/write on projections")
    for note in notes:
        log.info("app_role", note=note)
    return notes


async def migrate_schema(
    app: AsyncEngine, migrate: Callable[[AsyncEngine], Awaitable[None]], owner_url: str | None
) -> list[str]:
    """Run ``migrate`` as the schema owner when ``owner_url`` (MIGRATION_DATABASE_URL) is set,
    then grant ``app``'s role; without it the application's own role migrates (the default)."""
    if not owner_url:
        await migrate(app)
        return []
    url = make_url(owner_url).set(drivername="postgresql+asyncpg")
    owner = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 10})
    try:
        await migrate(owner)
        return await grant_app_role(owner, app.url)
    finally:
        await owner.dispose()
