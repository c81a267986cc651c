"""Notify the relay of appends: NOTIFY event_log_appended after every INSERT statement.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 20:00:00.000000

Written by hand (autogenerate does not see triggers). The relay LISTENs on the channel and
publishes as soon as an append commits, instead of polling PostgreSQL every 50 ms on every
API process's event loop; it still passes every ``RELAY_INTERVAL_S`` to notice a Redis that
lost its data and any notification missed while its connection was down. NOTIFY is sent at
commit, once per transaction and channel however many rows it inserted.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "event_log_appended"


def upgrade() -> None:
    """Apply this revision."""
    op.execute(
        f"""
CREATE OR REPLACE FUNCTION event_log_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
    )
    op.execute(
        "CREATE TRIGGER event_log_appended AFTER INSERT ON event_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION event_log_notify()"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DROP TRIGGER IF EXISTS event_log_appended ON event_log")
    op.execute("DROP FUNCTION IF EXISTS event_log_notify()")
