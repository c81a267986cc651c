"""Online evaluation (issue 24): online_runs (a projection of online-<model> streams: each
model's running shadow and canary) and online_outcomes (paired answers of shadows and canaries;
high-volume rows, not events, labelled through captured_requests).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "online_runs",
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("shadow", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("canary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ended", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_online_runs")),
    )
    op.create_table(
        "online_outcomes",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("prod_version", sa.Text(), nullable=False),
        sa.Column("candidate_version", sa.Text(), nullable=False),
        sa.Column("prod_prediction", sa.Integer(), nullable=True),
        sa.Column("candidate_prediction", sa.Integer(), nullable=True),
        sa.Column("prod_latency_ms", sa.Double(), nullable=True),
        sa.Column("candidate_latency_ms", sa.Double(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "request_id", name=op.f("pk_online_outcomes")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("online_outcomes")
    op.drop_table("online_runs")
