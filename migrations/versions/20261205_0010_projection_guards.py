"""Guards on what authentication and serving read: keys, console sessions, prod, artifacts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:30:00.000000

Written by hand (autogenerate does not see triggers). The application role may write the
projections, so without these a leaked DATABASE_URL could insert an admin key's hash, switch
prod, or point a version at another artifact, with no event. Each trigger (owned by the schema
owner: the application role can neither drop nor disable it) refuses a row the log does not
make: the row must equal what the latest relevant event of its stream says, and that event is
visible because projections are written in the transaction that appends it. A forged row now
needs a forged event, which lands in the hash-chained log (docs/audit.md, docs/security.md).
A console session (not in the log) may carry only the name and role of an active api_keys row.
A rebuild writes exactly what the log says, so it passes; a deletion is checked at commit, so a
rebuild's delete-and-refill passes while a plain DELETE of a live key or prod row does not.

The functions run as the caller (who may SELECT event_log) with the owner's schema and pg_temp
last on their search_path: a temporary table named event_log cannot shadow the real one.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROD_EVENTS = "('ModelVersionPromoted', 'ModelVersionRolledBack', 'ModelVersionDemoted')"

# $S$ is replaced by the quoted schema; statements are split at "\n;;\n" (one per execute).
# Refusals use SQLSTATE 42501 (insufficient_privilege).
FUNCTIONS = """
CREATE OR REPLACE FUNCTION $S$.event_payload(payload bytea) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    -- Immutable so that an index can hold it: the database's encoding is UTF8 for good.
    SELECT convert_from(payload, 'UTF8')::jsonb
$$
;;
CREATE OR REPLACE FUNCTION $S$.api_keys_match_log() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
DECLARE
    kind text;
    body jsonb;
BEGIN
    -- The key's latest event: one backward probe of (stream_id, stream_version).
    SELECT e.event_type, convert_from(e.payload, 'UTF8')::jsonb INTO kind, body
      FROM $S$.event_log e WHERE e.stream_id = 'key-' || NEW.key_name
     ORDER BY e.stream_version DESC LIMIT 1;
    IF kind = 'ApiKeyCreated' AND NEW.active AND NEW.role = body->>'role'
       AND NEW.key_hash = body->>'key_hash' THEN
        RETURN NEW;
    END IF;
    IF kind = 'ApiKeyRevoked' AND NOT NEW.active THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'api_keys row % refused: the event log does not say so (latest event: %)',
        NEW.key_name, coalesce(kind, 'none') USING ERRCODE = 'insufficient_privilege';
END;
$$
;;
CREATE OR REPLACE FUNCTION $S$.api_keys_kept_while_active() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
BEGIN
    -- Deferred to commit: a rebuild deletes every row and writes them again first.
    IF EXISTS (SELECT 1 FROM $S$.api_keys k WHERE k.key_name = OLD.key_name) THEN
        RETURN NULL;
    END IF;
    IF (SELECT e.event_type FROM $S$.event_log e WHERE e.stream_id = 'key-' || OLD.key_name
         ORDER BY e.stream_version DESC LIMIT 1) = 'ApiKeyCreated' THEN
        RAISE EXCEPTION 'api_keys row % refused: deleting it needs an ApiKeyRevoked event',
            OLD.key_name USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$
;;
CREATE OR REPLACE FUNCTION $S$.model_prod_expected(name text) RETURNS text
LANGUAGE sql STABLE SET search_path = $S$, pg_temp AS $$
    -- The target of the model's latest promotion, rollback or demotion (NULL: none, or demoted).
    SELECT CASE e.event_type
               WHEN 'ModelVersionPromoted' THEN convert_from(e.payload, 'UTF8')::jsonb->>'model_version'
               WHEN 'ModelVersionRolledBack' THEN convert_from(e.payload, 'UTF8')::jsonb->>'to_version'
           END
      FROM $S$.event_log e
     WHERE e.stream_id = 'model-' || name AND e.event_type IN $PROD$
     ORDER BY e.stream_version DESC LIMIT 1
$$
;;
CREATE OR REPLACE FUNCTION $S$.model_prod_match_log() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
DECLARE
    expected text := $S$.model_prod_expected(NEW.model_name);
BEGIN
    IF NEW.model_version IS NOT DISTINCT FROM expected
       AND EXISTS (SELECT 1 FROM $S$.event_log e WHERE e.stream_id = 'model-' || NEW.model_name) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'model_prod row % refused: prod % is not what the event log says (%)',
        NEW.model_name, coalesce(NEW.model_version, 'none'), coalesce(expected, 'none')
        USING ERRCODE = 'insufficient_privilege';
END;
$$
;;
CREATE OR REPLACE FUNCTION $S$.model_prod_kept() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM $S$.model_prod p WHERE p.model_name = OLD.model_name)
       AND EXISTS (SELECT 1 FROM $S$.event_log e WHERE e.stream_id = 'model-' || OLD.model_name) THEN
        RAISE EXCEPTION 'model_prod row % refused: the log still registers this model',
            OLD.model_name USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$
;;
CREATE OR REPLACE FUNCTION $S$.model_versions_match_log() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
BEGIN
    -- The artifact serving loads and checks: as the version's registration recorded it.
    IF EXISTS (
        SELECT 1 FROM $S$.event_log e
         WHERE e.stream_id = 'model-' || NEW.model_name
           AND e.event_type = 'ModelVersionRegistered'
           AND $S$.event_payload(e.payload)->>'model_version' = NEW.model_version
           AND $S$.event_payload(e.payload) @> jsonb_build_object(
                   'model_version', NEW.model_version, 'artifact_uri', NEW.artifact_uri,
                   'sha256', NEW.sha256, 'size_bytes', NEW.size_bytes)
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'model_versions row % % refused: no registration in the event log has '
        'this artifact', NEW.model_name, NEW.model_version USING ERRCODE = 'insufficient_privilege';
END;
$$
;;
CREATE OR REPLACE FUNCTION $S$.console_sessions_match_key() RETURNS trigger
LANGUAGE plpgsql SET search_path = $S$, pg_temp AS $$
DECLARE
    k record;
BEGIN
    SELECT a.key_name, a.role, a.active INTO k FROM $S$.api_keys a WHERE a.key_hash = NEW.key_hash;
    -- No row: a key from the API_KEYS setting, which the console checks itself on every page.
    IF NOT FOUND OR (k.active AND k.key_name = NEW.key_name AND k.role = NEW.role) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'console_sessions row refused: key % has no active % key in api_keys',
        NEW.key_name, NEW.role USING ERRCODE = 'insufficient_privilege';
END;
$$
"""

TRIGGERS = """
CREATE TRIGGER api_keys_match_log BEFORE INSERT OR UPDATE ON $S$.api_keys
    FOR EACH ROW EXECUTE FUNCTION $S$.api_keys_match_log()
;;
CREATE CONSTRAINT TRIGGER api_keys_kept_while_active AFTER DELETE ON $S$.api_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION $S$.api_keys_kept_while_active()
;;
CREATE TRIGGER model_prod_match_log BEFORE INSERT OR UPDATE ON $S$.model_prod
    FOR EACH ROW EXECUTE FUNCTION $S$.model_prod_match_log()
;;
CREATE CONSTRAINT TRIGGER model_prod_kept AFTER DELETE ON $S$.model_prod
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION $S$.model_prod_kept()
;;
CREATE TRIGGER model_versions_match_log BEFORE INSERT ON $S$.model_versions
    FOR EACH ROW EXECUTE FUNCTION $S$.model_versions_match_log()
;;
-- Every save rewrites each version row: check only the ones whose artifact or key moves.
CREATE TRIGGER model_versions_artifact_match_log BEFORE UPDATE ON $S$.model_versions
    FOR EACH ROW WHEN (NEW.model_name IS DISTINCT FROM OLD.model_name
        OR NEW.model_version IS DISTINCT FROM OLD.model_version
        OR NEW.artifact_uri IS DISTINCT FROM OLD.artifact_uri
        OR NEW.sha256 IS DISTINCT FROM OLD.sha256
        OR NEW.size_bytes IS DISTINCT FROM OLD.size_bytes)
    EXECUTE FUNCTION $S$.model_versions_match_log()
;;
-- A console session is a key's name and role: only those of an active key (the role that
-- authenticates is the session's, so a session row must not raise it).
CREATE TRIGGER console_sessions_match_key BEFORE INSERT ON $S$.console_sessions
    FOR EACH ROW EXECUTE FUNCTION $S$.console_sessions_match_key()
;;
CREATE TRIGGER console_sessions_identity_kept BEFORE UPDATE ON $S$.console_sessions
    FOR EACH ROW WHEN (NEW.key_hash IS DISTINCT FROM OLD.key_hash
        OR NEW.key_name IS DISTINCT FROM OLD.key_name OR NEW.role IS DISTINCT FROM OLD.role)
    EXECUTE FUNCTION $S$.console_sessions_match_key()
"""

# The probes above, each one short index scan of a model's stream.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_event_log_prod_events ON $S$.event_log "
    f"(stream_id, stream_version) WHERE event_type IN {PROD_EVENTS}",
    "CREATE INDEX IF NOT EXISTS ix_event_log_registrations ON $S$.event_log "
    "(stream_id, ($S$.event_payload(payload)->>'model_version')) "
    "WHERE event_type = 'ModelVersionRegistered'",
)

DROPS = (
    "DROP TRIGGER IF EXISTS console_sessions_identity_kept ON $S$.console_sessions",
    "DROP TRIGGER IF EXISTS console_sessions_match_key ON $S$.console_sessions",
    "DROP FUNCTION IF EXISTS $S$.console_sessions_match_key()",
    "DROP TRIGGER IF EXISTS model_versions_artifact_match_log ON $S$.model_versions",
    "DROP TRIGGER IF EXISTS model_versions_match_log ON $S$.model_versions",
    "DROP TRIGGER IF EXISTS model_prod_kept ON $S$.model_prod",
    "DROP TRIGGER IF EXISTS model_prod_match_log ON $S$.model_prod",
    "DROP TRIGGER IF EXISTS api_keys_kept_while_active ON $S$.api_keys",
    "DROP TRIGGER IF EXISTS api_keys_match_log ON $S$.api_keys",
    "DROP FUNCTION IF EXISTS $S$.model_versions_match_log()",
    "DROP FUNCTION IF EXISTS $S$.model_prod_kept()",
    "DROP FUNCTION IF EXISTS $S$.model_prod_match_log()",
    "DROP FUNCTION IF EXISTS $S$.model_prod_expected(text)",
    "DROP FUNCTION IF EXISTS $S$.api_keys_kept_while_active()",
    "DROP FUNCTION IF EXISTS $S$.api_keys_match_log()",
    "DROP INDEX IF EXISTS $S$.ix_event_log_registrations",
    "DROP INDEX IF EXISTS $S$.ix_event_log_prod_events",
    "DROP FUNCTION IF EXISTS $S$.event_payload(bytea)",
)


def _sql(template: str) -> str:
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    return template.replace("$S$", schema).replace("$PROD$", PROD_EVENTS)


def upgrade() -> None:
    """Apply this revision."""
    for statement in (*FUNCTIONS.split("\n;;\n"), *INDEXES, *TRIGGERS.split("\n;;\n")):
        op.execute(_sql(statement))


def downgrade() -> None:
    """Revert this revision."""
    for statement in DROPS:
        op.execute(_sql(statement))
