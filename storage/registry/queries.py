"""Read-side queries over the registry projections and the log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import NotFound, UnknownModel
from domain.paging.cursors import decode_cursor, page_of
from domain.registry.reference import reference_accuracy
from domain.registry.views import HistoryEntry, ModelSummary, ModelVersionView, history_entry
from events.base import RecordedEvent
from events.online import online_stream_id
from events.streams import model_stream_id
from events.traffic import TRAFFIC_DATASET_STREAM_PREFIX, TrafficDatasetFrozen, capture_stream_id
from storage import event_store
from storage.checkpoints import get_checkpoint
from storage.errors import on_postgres
from storage.gates.queries import gate_history
from storage.registry.projection import REGISTRY_PROJECTION
from storage.tables import event_log, model_prod, model_versions


class RegistryQueries:
    """Queries for the API and the CLI."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def list_models(self, model_name: str | None = None) -> list[ModelSummary]:
        """Every version of every model (or of one), newest first within a model."""
        v = model_versions.c
        q = select(*SUMMARY).order_by(v.model_name, v.created_at.desc())
        if model_name is not None:
            q = q.where(v.model_name == model_name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [_summary(r._asdict()) for r in rows]

    @on_postgres
    async def list_versions(self, model_name: str) -> list[ModelVersionView]:
        """All versions of one model, oldest first; NotFound if the model is unknown."""
        q = (
            select(model_versions)
            .where(model_versions.c.model_name == model_name)
            .order_by(model_versions.c.created_at)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        if not rows:
            raise UnknownModel(model_name)
        return [_version_view(r._asdict()) for r in rows]

    @on_postgres
    async def get_version(self, model_name: str, model_version: str) -> ModelVersionView:
        """One version; NotFound names what is missing."""
        q = select(model_versions).where(
            model_versions.c.model_name == model_name,
            model_versions.c.model_version == model_version,
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            await self.list_versions(model_name)  # raises for an unknown model
            raise NotFound(f"model {model_name!r} has no version {model_version!r}")
        return _version_view(row._asdict())

    async def prod_version(self, model_name: str) -> str | None:
        """The current prod version, None if the model has none or is unknown."""
        try:
            return await self.require_prod(model_name)
        except NotFound:
            return None

    @on_postgres
    async def prod_models(self, limit: int) -> list[str]:
        """Names of models that have a prod version, most recently promoted first."""
        q = (
            select(model_prod.c.model_name)
            .where(model_prod.c.model_version.is_not(None))
            .order_by(model_prod.c.since.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(q)).scalars())

    @on_postgres
    async def model_names(self) -> list[str]:
        """Every registered model's name, sorted (an unknown name's message lists them)."""
        async with self.engine.connect() as conn:
            q = select(model_prod.c.model_name).order_by(model_prod.c.model_name)
            return list((await conn.execute(q)).scalars())

    @on_postgres
    async def registry_position(self) -> int:
        """The log position the registry projection reflects (prod read after it is as new)."""
        async with self.engine.connect() as conn:
            return await get_checkpoint(conn, REGISTRY_PROJECTION)

    @on_postgres
    async def ping(self) -> None:
        """Round-trip to PostgreSQL (raises when it is unreachable)."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    @on_postgres
    async def require_prod(self, model_name: str) -> str | None:
        """The prod version (None if none); NotFound if the model is unknown."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(model_prod.c.model_version).where(model_prod.c.model_name == model_name)
                )
            ).first()
        if row is None:
            raise UnknownModel(model_name)
        return row.model_version

    @on_postgres
    async def history(self, model_name: str) -> list[HistoryEntry]:
        """The model's audit trail from the log, its gates' events merged in, oldest first."""
        async with self.engine.connect() as conn:
            recorded = await event_store.load_stream(conn, model_stream_id(model_name))
            if not recorded:
                raise UnknownModel(model_name)
            recorded += await gate_history(conn, model_name)
            recorded += await side_history(conn, model_name, frozen=True)
        return [history_entry(r) for r in sorted(recorded, key=lambda r: r.position)]

    @on_postgres
    async def page_models(
        self, limit: int, cursor: str | None
    ) -> tuple[list[ModelSummary], str | None]:
        """Every version of every model by name, newest first within a model, a page at a time."""
        v = model_versions.c
        q = select(*SUMMARY)
        if cursor:
            name, at, version = decode_cursor(cursor, str, datetime, str)
            later = or_(v.created_at < at, and_(v.created_at == at, v.model_version > version))
            q = q.where(or_(v.model_name > name, and_(v.model_name == name, later)))
        q = q.order_by(v.model_name, v.created_at.desc(), v.model_version).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [_summary(r._asdict()) for r in await conn.execute(q)]
        return page_of(rows, limit, lambda m: (m.model_name, m.created_at, m.model_version))

    async def page_versions(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[ModelVersionView], str | None]:
        """One model's versions, oldest first, a page at a time; NotFound if unknown."""
        return await page_versions(self.engine, model_name, limit, cursor)

    @on_postgres
    async def page_history(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[HistoryEntry], str | None]:
        """The model's trail (its gates' events merged in) by log position, a page at a time."""
        after = decode_cursor(cursor, int)[0] if cursor else 0
        stream = model_stream_id(model_name)
        streams = [stream, *side_streams(model_name)]
        q = (
            select(event_log)
            .where(event_log.c.stream_id.in_(streams), event_log.c.position > after)
            .order_by(event_log.c.position)
            .limit(limit + 1)
        )
        async with self.engine.connect() as conn:
            own = [event_store.to_recorded(r) for r in await conn.execute(q)]
            known = bool(own) or bool(
                await conn.scalar(
                    select(event_log.c.position).where(event_log.c.stream_id == stream).limit(1)
                )
            )
            gated = [r for r in await gate_history(conn, model_name) if r.position > after]
        if not known:
            raise UnknownModel(model_name)
        merged = sorted([*own, *gated], key=lambda r: r.position)[: limit + 1]
        page, next_cursor = page_of(merged, limit, lambda r: (r.position,))
        return [history_entry(r) for r in page], next_cursor


def side_streams(model_name: str) -> list[str]:
    """The model's own streams besides its registry stream: shadows and canaries, capture."""
    return [online_stream_id(model_name), capture_stream_id(model_name)]


async def side_history(
    conn: AsyncConnection, model_name: str, *, frozen: bool = False
) -> list[RecordedEvent]:
    """The events of the model's side streams, and with ``frozen`` the datasets frozen from its
    captured traffic (found by event type: a scan of the log, for the CLI's whole history)."""
    q = select(event_log).where(event_log.c.stream_id.in_(side_streams(model_name)))
    found = [event_store.to_recorded(r) for r in await conn.execute(q)]
    if frozen:
        q = select(event_log).where(
            event_log.c.event_type == TrafficDatasetFrozen.__name__,
            event_log.c.stream_id.startswith(TRAFFIC_DATASET_STREAM_PREFIX, autoescape=True),
        )
        datasets = [event_store.to_recorded(r) for r in await conn.execute(q)]
        found += [r for r in datasets if r.event.model_name == model_name]
    return found


@on_postgres
async def page_versions(
    engine: AsyncEngine,
    model_name: str,
    limit: int,
    cursor: str | None,
    *,
    newest_first: bool = False,
) -> tuple[list[ModelVersionView], str | None]:
    """A model's versions by (created_at, version), a page at a time; NotFound if unknown."""
    v = model_versions.c
    q = select(model_versions).where(v.model_name == model_name)
    if cursor:
        at, version = decode_cursor(cursor, datetime, str)
        if newest_first:
            q = q.where(or_(v.created_at < at, and_(v.created_at == at, v.model_version < version)))
        else:
            q = q.where(or_(v.created_at > at, and_(v.created_at == at, v.model_version > version)))
    order = (
        (v.created_at.desc(), v.model_version.desc())
        if newest_first
        else (v.created_at, v.model_version)
    )
    async with engine.connect() as conn:
        rows = [
            _version_view(r._asdict())
            for r in await conn.execute(q.order_by(*order).limit(limit + 1))
        ]
    if not rows and not cursor:
        raise UnknownModel(model_name)
    return page_of(rows, limit, lambda m: (m.created_at, m.model_version))


_v = model_versions.c
# A summary row and what its accuracy is computed from (not the whole artifact metadata).
SUMMARY = (
    _v.model_name,
    _v.model_version,
    _v.status,
    _v.created_at,
    _v.reference_dataset,
    _v.metrics["accuracy"].label("metric_accuracy"),
    _v.metrics["dataset_id"].label("metric_dataset"),
    _v.metrics["images"].label("metric_images"),
    _v.metrics["job_id"].label("metric_job"),
    _v.artifact_metadata["test_metrics"].label("test_metrics"),
    _v.artifact_metadata["training"]["eval_dataset"].label("eval_dataset"),
    _v.artifact_metadata["training"]["eval_samples"].label("eval_samples"),
)


def _summary(row: dict) -> ModelSummary:
    metrics = {
        "accuracy": row.pop("metric_accuracy"),
        "dataset_id": row.pop("metric_dataset"),
        "images": row.pop("metric_images"),
        "job_id": row.pop("metric_job"),
    }
    training = {"eval_dataset": row.pop("eval_dataset"), "eval_samples": row.pop("eval_samples")}
    artifact = {"test_metrics": row.pop("test_metrics"), "training": training}
    figure = reference_accuracy(row["reference_dataset"], metrics, artifact)
    return ModelSummary(**row, accuracy=figure)


def _version_view(row: dict) -> ModelVersionView:
    row["metadata"] = row.pop("artifact_metadata")
    figure = reference_accuracy(row["reference_dataset"], row["metrics"], row["metadata"])
    return ModelVersionView(**row, accuracy=figure)
