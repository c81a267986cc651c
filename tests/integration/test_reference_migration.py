"""Migration 0008 rewrites the version rows a database already has: ``metrics`` becomes the
evaluation on the reference dataset (it held the latest, whatever its dataset), the new
``reference_dataset`` column is filled, and the rows equal what a projection rebuild gives.

The migration's data step runs on rows put back as 0007 left them (the later revisions'
downgrades are theirs to test); the schema step runs in every migrated test database.
"""

from __future__ import annotations

import importlib.util

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import select, update

import bootstrap
from domain.registry.commands import RecordEvaluation, RecordRegistration
from domain.registry.handlers import change_model
from events.base import EventMetadata
from events.registry import ArtifactMetadata
from storage.projections import rebuild_projections
from storage.tables import model_versions
from tests.conftest import ROOT, isolated

pytestmark = pytest.mark.anyio
MIGRATION_REDIS_DB = 9  # isolated() empties it; the shared fixtures use 0, other modules 10-15
META = EventMetadata(actor="tester")
OWN = {"accuracy": 0.8125, "images": 1000}
OTHER = {"accuracy": 0.2, "images": 5}


def _migration():
    path = ROOT / "migrations/versions/20261205_0008_model_versions_reference_dataset.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _data_step(engine) -> None:
    migration = _migration()

    def run(sync_conn) -> None:
        with Operations.context(MigrationContext.configure(sync_conn)):
            migration._reproject_versions()

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _rows(engine) -> list[dict]:
    v = model_versions.c
    q = select(v.model_name, v.model_version, v.metrics, v.reference_dataset).order_by(
        v.model_version
    )
    async with engine.connect() as conn:
        return [r._asdict() for r in await conn.execute(q)]


async def test_upgrading_rewrites_metrics_to_the_reference_figure(test_settings) -> None:
    async with isolated(test_settings, MIGRATION_REDIS_DB, "refmig") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        try:
            registered = RecordRegistration(
                model_name="m",
                model_version="v1",
                artifact_uri="m/v1/model.pt",
                sha256="a" * 64,
                size_bytes=1,
                metadata=ArtifactMetadata(dataset="fashion_mnist_train"),
            )
            await change_model(registered, META, p.uow)
            for job, dataset, metrics in (
                ("j1", "fashion_mnist_1000", OWN),
                ("j2", "mnist_5", OTHER),
            ):
                evaluated = RecordEvaluation(
                    model_name="m",
                    model_version="v1",
                    job_id=job,
                    dataset_id=dataset,
                    metrics=metrics,
                )
                await change_model(evaluated, META, p.uow)
            # The rows as 0007 left them: metrics held the latest evaluation, any dataset.
            latest = {"dataset_id": "mnist_5", "job_id": "j2", **OTHER}
            async with p.engine.begin() as conn:
                old = update(model_versions).values(metrics=latest, reference_dataset=None)
                await conn.execute(old)

            await _data_step(p.engine)
            [row] = await _rows(p.engine)
            assert row["reference_dataset"] == "fashion_mnist"
            assert row["metrics"] == {"dataset_id": "fashion_mnist_1000", "job_id": "j1", **OWN}
            await rebuild_projections(p.engine)
            assert await _rows(p.engine) == [row]
        finally:
            await p.aclose()
