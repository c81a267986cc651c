"""The console's audit runs in PostgreSQL, and an index to find the log's HMAC key marker.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 16:15:00.000000

audit_runs keeps every `just audit` run (the console shows the latest), instead of one Redis
key that anyone reaching Redis could overwrite with a clean report. Every append made with
AUDIT_HMAC_KEY looks for the AuditKeyAdopted marker (storage/event_store.py): a partial index
makes that one probe instead of a scan of the log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "audit_runs",
        sa.Column("run_id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("run", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.execute(
        "CREATE INDEX ix_event_log_key_adopted ON event_log (position) "
        "WHERE event_type = 'AuditKeyAdopted'"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DROP INDEX IF EXISTS ix_event_log_key_adopted")
    op.drop_table("audit_runs")
