"""The handlers' ports wired to fakes, with the shorthand calls the service-layer tests use."""

from __future__ import annotations

import uuid
from typing import Any

from domain.handlers.jobs import (
    aggregate_batch_job,
    evaluate_shard,
    plan_batch_job,
    submit_batch_job,
)
from domain.handlers.registry import register_model_version
from domain.jobs import PlanBatchJob
from events.base import Event, EventMetadata
from events.registry import ModelVersionPromoted, ModelVersionRegistered
from events.streams import job_stream_id, model_stream_id
from tests.unit.fakes import (
    FakeArtifactStore,
    FakeClock,
    FakeDatabase,
    FakeDatasetCatalog,
    FakeInspector,
    FakeRegistrationLock,
    FakeShardEvaluator,
    FakeShardQueue,
    FakeUnitOfWorkFactory,
)

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class RegistryPorts:
    """The registry handlers' ports wired to fakes: sources a.pt, b.pt and the unloadable bad.pt."""

    def __init__(self, actor: str = "tester") -> None:
        self.metadata = EventMetadata(actor=actor)
        self.uow = FakeUnitOfWorkFactory()
        sources = {"a.pt": b"weights-a", "b.pt": b"weights-b", "bad.pt": b"not a model"}
        self.store = FakeArtifactStore(sources)
        self.inspector = FakeInspector(bad={"bad.pt"})
        self.lock = FakeRegistrationLock()

    async def register(self, version: str = "v1", source: str = "a.pt", **kw: Any):
        """Register ``source`` as ``version`` of model m (or ``model_name``)."""
        return await register_model_version(
            model_name=kw.get("model_name", "m"), model_version=version, source=source,
            tags=kw.get("tags", {}), reason=kw.get("reason"),
            metadata_override=kw.get("metadata_override"), metadata=self.metadata,
            uow=self.uow, lock=self.lock, store=self.store, inspector=self.inspector,
        )  # fmt: skip

    def events(self, model_name: str = "m") -> list[Event]:
        """Committed events of one model."""
        return self.uow.db.events(model_stream_id(model_name))


def _registered(name: str, version: str) -> ModelVersionRegistered:
    uri, sha = f"mem://{name}/{version}", version * 32
    return ModelVersionRegistered(
        model_name=name, model_version=version, artifact_uri=uri, sha256=sha, size_bytes=1
    )


class JobPorts:
    """The ports of the job handlers, wired to fakes; model m has v1 (prod) and v2."""

    def __init__(self, actor: str = "tester") -> None:
        self.metadata = EventMetadata(actor=actor)
        self.clock = FakeClock()
        self.uow = FakeUnitOfWorkFactory(FakeDatabase(clock=self.clock))
        self.queue = FakeShardQueue()
        self.evaluator = FakeShardEvaluator(wrong={3, 150, 249})
        self.datasets = FakeDatasetCatalog({"mnist_250": (250, NAMES), "tiny_5": (5, NAMES)})
        for name, versions in (("m", ("v1", "v2")), ("n", ("v1",))):
            registered = [_registered(name, v) for v in versions]
            self.uow.db.append_now(model_stream_id(name), registered)
        promoted = ModelVersionPromoted(model_name="m", model_version="v1")
        self.uow.db.append_now(model_stream_id("m"), [promoted])

    async def submit(self, model_name: str = "m", dataset_id: str = "mnist_250", **kw):
        """Submit a job (prod version, batch 32, shards of 100 unless told)."""
        args = {"batch_size": 32, "model_version": None, "shard_size": 100, **kw}
        return await submit_batch_job(
            model_name=model_name, dataset_id=dataset_id, metadata=self.metadata, uow=self.uow,
            datasets=self.datasets, **args,
        )  # fmt: skip

    async def plan(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver BatchJobSubmitted to the batch-inference group."""
        return await plan_batch_job(
            PlanBatchJob(job_id=job_id), group="batch-inference", event_id=event_id or uuid.uuid4(),
            metadata=self.metadata, uow=self.uow, queue=self.queue,
        )  # fmt: skip

    async def shard(self, job_id: str, shard: int, worker: str = "w1"):
        """Deliver one work message."""
        return await evaluate_shard(
            job_id,
            shard,
            worker=worker,
            metadata=self.metadata,
            uow=self.uow,
            evaluator=self.evaluator,
        )

    async def aggregate(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver a shard completion to the metric-aggregation group."""
        return await aggregate_batch_job(
            job_id, group="metric-aggregation", event_id=event_id or uuid.uuid4(), metadata=self.metadata,
            uow=self.uow, datasets=self.datasets, clock=self.clock,
        )  # fmt: skip

    def job_events(self, job_id: str) -> list:
        """Committed events of one job."""
        return self.uow.db.events(job_stream_id(job_id))

    def model_events(self, kind: type) -> list:
        """Committed events of model m of one type."""
        return [e for e in self.uow.db.events(model_stream_id("m")) if isinstance(e, kind)]
