"""Audit: a hash scheme per event_log row, and a jsonb view of the log for auditors.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:10:00.000000

Reviewed by hand. Existing rows keep their hashes and get ``hash_scheme = 1`` (SHA-256 over
every column but position and trace context, as written before this revision); new rows are
written with scheme 2 (SHA-256 over every column) or 3 (HMAC-SHA-256, with AUDIT_HMAC_KEY).
Re-chaining the old rows instead would mean disabling the append-only trigger and rewriting
history, which is exactly the tampering the chain exists to reveal, and it would invalidate
every anchor kept outside the database. Old rows never carried a trace context, so the
verifier requires theirs to be NULL: no column is left uncovered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW = """
CREATE VIEW event_log_json AS
SELECT position, stream_id, stream_version, event_id, event_type, schema_version,
       convert_from(payload, 'UTF8')::jsonb AS payload,
       actor, correlation_id, causation_id, trace_context, recorded_at,
       encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash, hash_scheme
FROM event_log
"""


def upgrade() -> None:
    """Apply this revision."""
    # The default only labels the rows that exist now; new rows must say how they were hashed.
    op.add_column(
        "event_log",
        sa.Column("hash_scheme", sa.SmallInteger(), server_default="1", nullable=False),
    )
    op.alter_column("event_log", "hash_scheme", server_default=None)
    # The hash stays computed over the stored bytes; the view only presents them as jsonb.
    op.execute(VIEW)
    # Nobody but the owner may change the log, whatever grants a role is given later.
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON event_log FROM PUBLIC")


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DROP VIEW IF EXISTS event_log_json")
    op.drop_column("event_log", "hash_scheme")
