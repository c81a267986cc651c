"""The handlers' ports wired to fakes, with the shorthand calls the service-layer tests use."""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from typing import Any

from domain.bus import MessageBus, bind
from domain.delivery import Delivery
from domain.gates import handlers as gate_handlers
from domain.gates.commands import (
    CheckGate,
    CheckGatesOfJob,
    PromoteAfterGate,
    RequestAutomaticGate,
    RequestGate,
    StartGate,
)
from domain.gates.evaluation import check_gate, on_job_finished, start_gate
from domain.gates.handlers import auto_gate, auto_promote, request_gate
from domain.gates.ports import GatePorts, LatencyRun, VerdictPorts
from domain.jobs import handlers as job_handlers
from domain.jobs.commands import AggregateBatchJob, EvaluateShard, PlanBatchJob, SubmitBatchJob
from domain.jobs.handlers import submit_batch_job
from domain.jobs.ports import JobLimits, JobPorts, ShardPorts
from domain.jobs.work import aggregate_batch_job, evaluate_shard, plan_batch_job
from domain.registry.commands import RegisterModelVersion
from domain.registry.handlers import register_model_version
from domain.registry.ports import RegistryPorts
from events.base import Event, EventMetadata
from events.gates import GatePolicy, GateThresholds
from events.registry import GatePolicySet, ModelVersionPromoted, ModelVersionRegistered
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


class RegistryFakes:
    """The registry handlers' ports on fakes: sources a.pt, b.pt and the unloadable bad.pt."""

    def __init__(self, actor: str = "tester") -> None:
        self.metadata = EventMetadata(actor=actor)
        self.clock = FakeClock()
        self.uow = FakeUnitOfWorkFactory()
        sources = {"a.pt": b"weights-a", "b.pt": b"weights-b", "bad.pt": b"not a model"}
        self.store = FakeArtifactStore(sources)
        self.inspector = FakeInspector(bad={"bad.pt"})
        self.lock = FakeRegistrationLock()

    @property
    def ports(self) -> RegistryPorts:
        """The ports as the handlers take them (built from the fakes set now)."""
        return RegistryPorts(
            uow=self.uow,
            artifacts=self.store,
            inspector=self.inspector,
            lock=self.lock,
            clock=self.clock,
        )

    async def register(self, version: str = "v1", source: str = "a.pt", **kw: Any):
        """Register ``source`` as ``version`` of model m (or ``model_name``)."""
        cmd = RegisterModelVersion(
            model_name=kw.get("model_name", "m"),
            model_version=version,
            source=source,
            tags=kw.get("tags", {}),
            reason=kw.get("reason"),
            artifact_metadata=kw.get("metadata_override"),
            metadata=self.metadata,
        )
        return await register_model_version(cmd, self.ports)

    def events(self, model_name: str = "m") -> list[Event]:
        """Committed events of one model."""
        return self.uow.db.events(model_stream_id(model_name))


def _registered(name: str, version: str) -> ModelVersionRegistered:
    uri, sha = f"mem://{name}/{version}", version * 32
    return ModelVersionRegistered(
        model_name=name, model_version=version, artifact_uri=uri, sha256=sha, size_bytes=1
    )


class JobFakes:
    """The ports of the job handlers, wired to fakes; model m has v1 (prod) and v2."""

    def __init__(self, actor: str = "tester") -> None:
        self.metadata = EventMetadata(actor=actor)
        self.clock = FakeClock()
        self.uow = FakeUnitOfWorkFactory(FakeDatabase(clock=self.clock))
        self.queue = FakeShardQueue()
        self.evaluator = FakeShardEvaluator(wrong={3, 150, 249})
        self.datasets = FakeDatasetCatalog({"mnist_250": (250, NAMES), "tiny_5": (5, NAMES)})
        self.limits = JobLimits(shard_size=100)
        for name, versions in (("m", ("v1", "v2")), ("n", ("v1",))):
            registered = [_registered(name, v) for v in versions]
            self.uow.db.append_now(model_stream_id(name), registered)
        promoted = ModelVersionPromoted(model_name="m", model_version="v1")
        self.uow.db.append_now(model_stream_id("m"), [promoted])

    @property
    def ports(self) -> JobPorts:
        """The job handlers' ports (built from the fakes and limits set now)."""
        return JobPorts(
            uow=self.uow,
            datasets=self.datasets,
            queue=self.queue,
            clock=self.clock,
            limits=self.limits,
        )

    @functools.cached_property
    def shard_ports(self) -> ShardPorts:
        """The shard handler's ports (one worker's: its remembered plans last)."""
        return ShardPorts(uow=self.uow, evaluator=self.evaluator)

    def delivery(self, group: str, event_id: uuid.UUID | None = None) -> Delivery:
        """A delivery to ``group`` (a fresh event id unless given)."""
        return Delivery(group=group, event_id=event_id or uuid.uuid4())

    async def submit(
        self,
        model_name: str = "m",
        dataset_id: str = "mnist_250",
        max_shards: int | None = None,
        max_active: int | None = None,
        **kw,
    ):
        """Submit a job (prod version, batch 32, shards of 100, no limits unless told)."""
        args = {"batch_size": 32, "model_version": None, "shard_size": 100, **kw}
        cmd = SubmitBatchJob(
            model_name=model_name, dataset_id=dataset_id, metadata=self.metadata, **args
        )
        limits = JobLimits(shard_size=100, max_shards=max_shards, max_active=max_active)
        return await submit_batch_job(cmd, replace(self.ports, limits=limits))

    async def plan(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver BatchJobSubmitted to the batch-inference group."""
        delivery = self.delivery("batch-inference", event_id)
        cmd = PlanBatchJob(job_id=job_id, delivery=delivery, metadata=self.metadata)
        return await plan_batch_job(cmd, self.ports)

    async def shard(self, job_id: str, shard: int, worker: str = "w1"):
        """Deliver one work message."""
        cmd = EvaluateShard(job_id=job_id, shard=shard, worker=worker, metadata=self.metadata)
        return await evaluate_shard(cmd, self.shard_ports)

    async def aggregate(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver a shard completion to the metric-aggregation group."""
        delivery = self.delivery("metric-aggregation", event_id)
        cmd = AggregateBatchJob(job_id=job_id, delivery=delivery, metadata=self.metadata)
        return await aggregate_batch_job(cmd, self.ports)

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


# Margins the fakes' small datasets can decide (docs/gates.md: n for a given margin).
FAKE_MARGINS = GateThresholds(max_accuracy_drop=0.02)


class GateFakes(JobFakes):
    """The gate handlers' ports on fakes: model m has v1 (prod) and v2, n has v1 only."""

    group = "gate-evaluation"

    def __init__(self, wrong: dict[str, set[int]] | None = None) -> None:
        super().__init__()
        self.evaluator = VersionedEvaluator(wrong or {})
        self.latency = FakeLatencyMeter()
        # 250 identical predictions show non-inferiority within 2 points, not within 1.
        policy = GatePolicySet(model_name="m", policy=GatePolicy(thresholds=FAKE_MARGINS))
        self.uow.db.append_now(model_stream_id("m"), [policy])

    @property
    def gate_ports(self) -> GatePorts:
        """The gate handlers' ports."""
        jobs = self.ports
        return GatePorts(uow=self.uow, datasets=self.datasets, clock=self.clock, jobs=jobs)

    @property
    def verdict_ports(self) -> VerdictPorts:
        """The ports of the handlers that judge a gate."""
        return VerdictPorts(uow=self.uow, latency=self.latency)

    @property
    def bus(self) -> MessageBus:
        """A worker's bus over these fakes (every job and gate command)."""
        return MessageBus(
            bind(job_handlers.HANDLERS, self.ports),
            bind(job_handlers.SHARD_HANDLERS, self.shard_ports),
            bind(gate_handlers.HANDLERS, self.gate_ports),
            bind(gate_handlers.VERDICT_HANDLERS, self.verdict_ports),
        )

    @property
    def registry_ports(self) -> RegistryPorts:
        """The registry handlers' ports over the same fakes (promotions check the gates)."""
        return RegistryPorts(
            uow=self.uow,
            artifacts=FakeArtifactStore({}),
            inspector=FakeInspector(),
            lock=FakeRegistrationLock(),
            clock=self.clock,
        )

    async def auto_gate(self, event_id: uuid.UUID, **kw: Any):
        """Deliver EvaluationRecorded (``kw``: model, version, dataset, job) to the group."""
        delivery = self.delivery(self.group, event_id)
        cmd = RequestAutomaticGate(delivery=delivery, metadata=self.metadata, **kw)
        return await auto_gate(cmd, self.gate_ports)

    async def auto_promote(self, gate_id: str, event_id: uuid.UUID):
        """Deliver GateEvaluated to the group."""
        delivery = self.delivery(self.group, event_id)
        cmd = PromoteAfterGate(gate_id=gate_id, delivery=delivery, metadata=self.metadata)
        return await auto_promote(cmd, self.gate_ports)

    async def request(self, candidate: str = "v2", baseline: str = "v1", **kw):
        """Request a gate on model m (dataset mnist_250 unless told)."""
        args = {"model_name": "m", "dataset_id": "mnist_250", **kw}
        cmd = RequestGate(
            candidate_version=candidate,
            baseline_version=baseline,
            metadata=self.metadata,
            **args,
        )
        return await request_gate(cmd, self.gate_ports)

    async def start(self, gate_id: str):
        """Deliver GateRequested to the gate-evaluation group."""
        return await start_gate(StartGate(gate_id=gate_id, metadata=self.metadata), self.gate_ports)

    async def check(self, gate_id: str, event_id: uuid.UUID | None = None):
        """Deliver GateEvaluationsRequested (or a job's end) for one gate."""
        delivery = self.delivery(self.group, event_id)
        cmd = CheckGate(gate_id=gate_id, delivery=delivery, metadata=self.metadata)
        return await check_gate(cmd, self.verdict_ports)

    async def job_finished(self, job_id: str, event_id: uuid.UUID | None = None):
        """Deliver a job's completion event to the gate-evaluation group."""
        delivery = self.delivery(self.group, event_id)
        cmd = CheckGatesOfJob(job_id=job_id, delivery=delivery, metadata=self.metadata)
        return await on_job_finished(cmd, self.verdict_ports)

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
