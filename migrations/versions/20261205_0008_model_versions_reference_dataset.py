"""model_versions.reference_dataset; ``metrics`` becomes the figures on that dataset.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 15:40:00.000000

Written by hand. A version's ``metrics`` held its latest evaluation whatever the dataset, so a
5-image job or one on another dataset replaced the figure `just list` and the console showed
(issue 22). The projection now writes the evaluation on the version's reference dataset
(domain/registry/reference.py) and names that dataset in the new column.

Data migration: every model stream is folded again and its version rows rewritten by the
projection's own code (storage.registry.projection), so the rows equal what a rebuild gives
and the projection audit finds no drift. Only the registry's rows change; the log is read,
never written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("model_versions", sa.Column("reference_dataset", sa.Text(), nullable=True))
    _reproject_versions()


def _reproject_versions() -> None:
    # Imported here: the projection's code is needed by the data step only.
    from storage.event_store import to_recorded
    from storage.registry.projection import MODELS
    from storage.tables import event_log, model_versions

    bind = op.get_bind()
    streams = bind.execute(
        sa.select(event_log.c.stream_id)
        .where(event_log.c.stream_id.startswith(MODELS.prefix, autoescape=True))
        .distinct()
    ).scalars()
    # The columns to_recorded reads, named: a later revision may add others to event_log.
    c = event_log.c
    needed = (c.position, c.stream_id, c.stream_version, c.event_id, c.recorded_at, c.actor)
    needed += (c.correlation_id, c.causation_id, c.trace_context, c.event_type, c.payload)
    needed += (c.schema_version,)
    for stream_id in list(streams):
        rows = bind.execute(
            sa.select(*needed)
            .where(event_log.c.stream_id == stream_id)
            .order_by(event_log.c.stream_version)
        )
        state = MODELS.fold(stream_id.removeprefix(MODELS.prefix), [to_recorded(r) for r in rows])
        for row in MODELS.rows(state)[model_versions]:
            bind.execute(
                sa.update(model_versions)
                .where(
                    model_versions.c.model_name == row["model_name"],
                    model_versions.c.model_version == row["model_version"],
                )
                .values(metrics=row["metrics"], reference_dataset=row["reference_dataset"])
            )


def downgrade() -> None:
    """Revert this revision (``metrics`` keeps the reference figures until a rebuild)."""
    op.drop_column("model_versions", "reference_dataset")
