"""The handlers' ports wired to fakes, with the shorthand calls the service-layer tests use."""

from __future__ import annotations

import uuid
from typing import Any

from domain.gates.evaluation import check_gate, on_job_finished, start_gate
from domain.gates.handlers import request_gate
from domain.gates.ports import LatencyRun
from domain.jobs.aggregate import PlanBatchJob
from domain.jobs.handlers import (
    aggregate_batch_job,
    evaluate_shard,
    plan_batch_job,
    submit_batch_job,
)
from domain.registry.handlers import register_model_version
from events.base import Event, EventMetadata
from events.registry import ModelVersionPromoted, ModelVersionRegistered
from events.streams import gate_stream_id, job_stream_id, model_stream_id
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
            model_name=kw.get("model_name", "m"),
            model_version=version,
            source=source,
            tags=kw.get("tags", {}),
            reason=kw.get("reason"),
            metadata_override=kw.get("metadata_override"),
            metadata=self.metadata,
            uow=self.uow,
            lock=self.lock,
            store=self.store,
            inspector=self.inspector,
        )

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
            model_name=model_name,
            dataset_id=dataset_id,
            metadata=self.metadata,
            uow=self.uow,
            datasets=self.datasets,
            **args,
        )

    async def plan(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver BatchJobSubmitted to the batch-inference group."""
        return await plan_batch_job(
            PlanBatchJob(job_id=job_id),
            group="batch-inference",
            event_id=event_id or uuid.uuid4(),
            metadata=self.metadata,
            uow=self.uow,
            queue=self.queue,
        )

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
            job_id,
            group="metric-aggregation",
            event_id=event_id or uuid.uuid4(),
            metadata=self.metadata,
            uow=self.uow,
            datasets=self.datasets,
            clock=self.clock,
        )

    def job_events(self, job_id: str) -> list:
        """Committed events of one job."""
        return self.uow.db.events(job_stream_id(job_id))

    def model_events(self, kind: type) -> list:
        """Committed events of model m of one type."""
        return [e for e in self.uow.db.events(model_stream_id("m")) if isinstance(e, kind)]


class FakeLatencyMeter:
    """PairedLatencyMeter with fixed per-batch timings (or an error to raise)."""

    def __init__(self, baseline_ms: float = 10.0, candidate_ms: float = 10.0, batches: int = 20):
        self.baseline_ms, self.candidate_ms, self.batches = baseline_ms, candidate_ms, batches
        self.error: Exception | None = None
        self.calls: list[tuple[str, str, str]] = []

    async def measure(self, baseline, candidate, dataset_id: str) -> LatencyRun:
        """The same timings every round, with a little alternating noise."""
        self.calls.append((baseline.model_version, candidate.model_version, dataset_id))
        if self.error is not None:
            raise self.error
        noise = [0.1 * (i % 3) for i in range(self.batches)]
        return LatencyRun(
            baseline_ms=[self.baseline_ms + n for n in noise],
            candidate_ms=[self.candidate_ms + n for n in noise],
            batch_size=64,
            order="ABBA",
        )


class VersionedEvaluator(FakeShardEvaluator):
    """FakeShardEvaluator whose wrong answers depend on the version evaluated."""

    def __init__(self, wrong: dict[str, set[int]]) -> None:
        super().__init__()
        self.wrong_by_version = wrong

    async def evaluate(self, version, dataset_id, start, stop, batch_size):
        """Wrong on the version's indices."""
        self.wrong = self.wrong_by_version.get(version.model_version, set())
        return await super().evaluate(version, dataset_id, start, stop, batch_size)


class GatePorts(JobPorts):
    """The gate handlers' ports on fakes: model m has v1 (prod) and v2, n has v1 only."""

    group = "gate-evaluation"

    def __init__(self, wrong: dict[str, set[int]] | None = None) -> None:
        super().__init__()
        self.evaluator = VersionedEvaluator(wrong or {})
        self.latency = FakeLatencyMeter()

    async def request(self, candidate: str = "v2", baseline: str = "v1", **kw):
        """Request a gate on model m (dataset mnist_250 unless told)."""
        args = {"model_name": "m", "dataset_id": "mnist_250", **kw}
        return await request_gate(
            candidate_version=candidate,
            baseline_version=baseline,
            metadata=self.metadata,
            uow=self.uow,
            datasets=self.datasets,
            **args,
        )

    async def start(self, gate_id: str):
        """Deliver GateRequested to the gate-evaluation group."""
        return await start_gate(
            gate_id, metadata=self.metadata, uow=self.uow, datasets=self.datasets, shard_size=100
        )

    async def check(self, gate_id: str, event_id: uuid.UUID | None = None):
        """Deliver GateEvaluationsRequested (or a job's end) for one gate."""
        return await check_gate(
            gate_id,
            group=self.group,
            event_id=event_id or uuid.uuid4(),
            metadata=self.metadata,
            uow=self.uow,
            latency=self.latency,
        )

    async def job_finished(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver a job's completion event to the gate-evaluation group."""
        return await on_job_finished(
            job_id,
            group=self.group,
            event_id=event_id or uuid.uuid4(),
            metadata=self.metadata,
            uow=self.uow,
            latency=self.latency,
        )

    async def run_job(self, job_id: str) -> None:
        """Plan, run every shard and aggregate a submitted job, as the groups would."""
        outcome = await self.plan(job_id)
        for shard in range(outcome.state.planned_shards):
            await self.shard(job_id, shard)
        await self.aggregate(job_id)

    async def gate(self, gate_id: str):
        """The gate's committed state."""
        async with self.uow() as tx:
            return await tx.gates.load(gate_id)

    def gate_events(self, gate_id: str) -> list:
        """Committed events of one gate."""
        return self.uow.db.events(gate_stream_id(gate_id))
