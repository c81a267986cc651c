"""Console sessions on the server: console_sessions, and a trigger that ends a revoked key's.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 15:30:00.000000

Written by hand (autogenerate does not see triggers). The console's cookie holds a random id;
the row (by the id's SHA-256) holds the key's name, role and SHA-256, a CSRF secret, and when
the session began and was last used. Every API process reads the same rows, so a logout or an
expiry holds in all of them. When an api_keys row becomes inactive (a revocation, whichever
process or CLI made it), the trigger deletes that key's sessions in the same transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("key_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("csrf_secret", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_key_hash", "console_sessions", ["key_hash"])
    op.create_index("ix_console_sessions_last_seen_at", "console_sessions", ["last_seen_at"])
    op.execute(
        """
CREATE OR REPLACE FUNCTION console_sessions_end_revoked() RETURNS trigger AS $$
BEGIN
    DELETE FROM console_sessions WHERE key_hash = NEW.key_hash;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
    )
    op.execute(
        "CREATE TRIGGER api_keys_revoked_end_sessions AFTER INSERT OR UPDATE ON api_keys "
        "FOR EACH ROW WHEN (NOT NEW.active) EXECUTE FUNCTION console_sessions_end_revoked()"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DROP TRIGGER IF EXISTS api_keys_revoked_end_sessions ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS console_sessions_end_revoked()")
    op.drop_table("console_sessions")
