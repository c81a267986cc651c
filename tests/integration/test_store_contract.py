"""One contract for the stores of the unit of work, on the in-memory fakes and on PostgreSQL.

As eventsourcing's tests/persistence.py runs one set of cases against every recorder: the cases
live in ``StoreContract``; each subclass only builds a unit-of-work factory (and reads the
projection rows back). A fake that behaves differently from PostgreSQL fails here.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from domain.errors import ConcurrencyConflict
from domain.jobs.store import ShardResult
from events.base import Event, EventMetadata
from events.gates import GateErrored, GateEvaluationsRequested, GateRequested
from events.jobs import BatchJobCancelled, BatchJobPlanned, BatchJobSubmitted
from events.keys import ApiKeyCreated, ApiKeyRevoked
from events.registry import ModelVersionRegistered, ModelVersionTagged
from storage.gates.projection import GATES
from storage.jobs.projection import JOBS
from storage.keys.projection import KEYS
from storage.registry.projection import MODELS
from storage.repository import Projection
from tests.unit.fakes import FakeClock, FakeDatabase, FakeUnitOfWorkFactory

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="contract")
CONTRACT_REDIS_DB = 15  # isolated() empties one; the shared fixtures use 0, audit 11 ... obs 14
Events = Callable[[str], list[Event]]


def _registered(name: str) -> list[Event]:
    return [
        ModelVersionRegistered(
            model_name=name,
            model_version="v1",
            artifact_uri="mem://v1",
            sha256="0" * 64,
            size_bytes=1,
        )
    ]


def _submitted(job_id: str) -> list[Event]:
    return [
        BatchJobSubmitted(
            job_id=job_id,
            model_name="m",
            model_version="v1",
            dataset_id="mnist_100",
            total=100,
            batch_size=10,
            shard_size=50,
        )
    ]


def _requested(gate_id: str, model: str = "m") -> list[Event]:
    return [
        GateRequested(
            gate_id=gate_id,
            model_name=model,
            candidate_version="v2",
            baseline_version="v1",
            dataset_id="mnist_100",
        )
    ]


# Each store of the unit of work: its projection, a first event and a next one.
KINDS: dict[str, tuple[Projection[Any], Events, Events]] = {
    "models": (
        MODELS,
        _registered,
        lambda n: [ModelVersionTagged(model_name=n, model_version="v1", tags={"k": "v"})],
    ),
    "jobs": (JOBS, _submitted, lambda j: [BatchJobPlanned(job_id=j, shards=2)]),
    "gates": (
        GATES,
        _requested,
        lambda g: [GateEvaluationsRequested(gate_id=g, candidate_job_id="c", baseline_job_id="b")],
    ),
    "keys": (
        KEYS,
        lambda k: [ApiKeyCreated(key_name=k, role="reader", key_hash=f"{k:0>64}")],
        lambda k: [ApiKeyRevoked(key_name=k, reason="left")],
    ),
}


def _id() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


def _shard(job_id: str, shard: int) -> ShardResult:
    return ShardResult(
        job_id=job_id,
        shard=shard,
        start=shard * 50,
        stop=shard * 50 + 2,
        predictions=[1, 2],
        labels=[1, 3],
        batch_latencies_ms=[1.5],
        batch_sizes=[2],
        worker="w",
    )


def _columns(found: dict[Any, list[dict]], like: dict[Any, list[dict]]) -> dict[Any, list[dict]]:
    """``found``'s rows with only the columns that ``like``'s rows of the same table have."""
    return {
        t: [{c: r[c] for c in like[t][0]} if like.get(t) else r for r in rows]
        for t, rows in found.items()
    }


class StoreContract(ABC):
    """The cases. A subclass provides the ``uow`` fixture (a UnitOfWorkFactory) and ``projected``."""

    @abstractmethod
    async def projected(self, uow, kind: str, aggregate_id: str) -> dict[Any, list[dict]]:
        """The committed projection rows of one aggregate, by table."""

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_an_unknown_stream_loads_as_the_empty_state(self, uow, kind: str) -> None:
        projection, _, _ = KINDS[kind]
        name = _id()
        async with uow() as tx:
            state = await getattr(tx, kind).load(name)
        assert state.stream_version == 0 and projection.identity(state) == name
        assert projection.rows(state) == projection.rows(projection.fold(name, []))

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_a_save_is_loaded_back_and_projected(self, uow, kind: str) -> None:
        projection, first, then = KINDS[kind]
        name = _id()
        async with uow() as tx:
            store = getattr(tx, kind)
            state = await store.load(name)
            recorded = await store.save(state, first(name), META)
            assert [r.stream_version for r in recorded] == [1] and state.stream_version == 1
            assert [r.event for r in recorded] == first(name)
            assert recorded[0].stream_id == projection.stream_id(name)
            assert recorded[0].metadata.actor == "contract"
            assert (await store.load(name)).stream_version == 1  # its own write, uncommitted
        async with uow() as tx:
            store = getattr(tx, kind)
            loaded = await store.load(name)
            assert loaded.stream_version == 1
            assert projection.rows(loaded) == projection.rows(state)
            await store.save(loaded, then(name), META)
        async with uow() as tx:
            final = await getattr(tx, kind).load(name)
        assert final.stream_version == 2 and projection.rows(final) == projection.rows(loaded)
        assert _columns(await self.projected(uow, kind, name), projection.rows(final)) == (
            projection.rows(final)
        )

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_a_stale_version_is_a_concurrency_conflict(self, uow, kind: str) -> None:
        _, first, then = KINDS[kind]
        name = _id()
        async with uow() as tx:
            store = getattr(tx, kind)
            await store.save(await store.load(name), first(name), META)
        async with uow() as tx:
            stale = await getattr(tx, kind).load(name)
        async with uow() as tx:
            store = getattr(tx, kind)
            await store.save(await store.load(name), then(name), META)
        with pytest.raises(ConcurrencyConflict):
            async with uow() as tx:
                await getattr(tx, kind).save(stale, then(name), META)
        async with uow() as tx:
            assert (await getattr(tx, kind).load(name)).stream_version == 2

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_several_events_are_appended_together_or_not_at_all(self, uow, kind) -> None:
        projection, first, then = KINDS[kind]
        name = _id()
        async with uow() as tx:
            store = getattr(tx, kind)
            state = await store.load(name)
            recorded = await store.save(state, [*first(name), *then(name)], META)
        assert [r.stream_version for r in recorded] == [1, 2]
        assert recorded[0].position < recorded[1].position
        with pytest.raises(ConcurrencyConflict):
            async with uow() as tx:
                stale = projection.fold(name, [])
                await getattr(tx, kind).save(stale, [*first(name), *then(name)], META)
        async with uow() as tx:
            loaded = await getattr(tx, kind).load(name)
        assert loaded.stream_version == 2 and projection.rows(loaded) == projection.rows(state)

    @pytest.mark.parametrize("kind", sorted(KINDS))
    async def test_saving_no_events_appends_nothing(self, uow, kind: str) -> None:
        name = _id()
        async with uow() as tx:
            store = getattr(tx, kind)
            state = await store.load(name)
            assert await store.save(state, [], META) == []
        async with uow() as tx:
            assert (await getattr(tx, kind).load(name)).stream_version == 0
        assert await self.projected(uow, kind, name) == {}

    async def test_a_projection_refuses_a_repeated_unique_value(self, uow) -> None:
        first, second, digest = _id(), _id(), uuid.uuid4().hex * 2
        async with uow() as tx:
            created = ApiKeyCreated(key_name=first, role="reader", key_hash=digest)
            await tx.keys.save(await tx.keys.load(first), [created], META)
        with pytest.raises(Exception, match="duplicate key value violates unique constraint"):
            async with uow() as tx:
                again = ApiKeyCreated(key_name=second, role="admin", key_hash=digest)
                await tx.keys.save(await tx.keys.load(second), [again], META)
        async with uow() as tx:
            assert (await tx.keys.load(second)).stream_version == 0
        assert await self.projected(uow, "keys", second) == {}

    async def test_an_error_rolls_back_everything_the_unit_of_work_wrote(self, uow) -> None:
        job_id, group, event_id = _id(), _id(), uuid.uuid4()
        with pytest.raises(RuntimeError, match="boom"):
            async with uow() as tx:
                await tx.jobs.save(await tx.jobs.load(job_id), _submitted(job_id), META)
                assert await tx.jobs.store_shard_result(_shard(job_id, 0))
                assert await tx.mark_processed(group, event_id)
                raise RuntimeError("boom")
        async with uow() as tx:
            assert (await tx.jobs.load(job_id)).stream_version == 0
            assert await tx.jobs.stored_shards(job_id) == set()
            assert await tx.jobs.progress(job_id) == ("", 0, 0)
            assert await tx.mark_processed(group, event_id)
        assert await self.projected(uow, "jobs", job_id) == {}

    async def test_an_event_is_processed_once_per_group(self, uow) -> None:
        group, event_id = _id(), uuid.uuid4()
        async with uow() as tx:
            assert await tx.mark_processed(group, event_id)
            assert not await tx.mark_processed(group, event_id)
        async with uow() as tx:
            assert not await tx.mark_processed(group, event_id)
            assert await tx.mark_processed(f"{group}-other", event_id)
            assert await tx.mark_processed(group, uuid.uuid4())

    async def test_shard_results_are_kept_once_and_read_in_shard_order(self, uow) -> None:
        job_id = _id()
        async with uow() as tx:
            assert await tx.jobs.store_shard_result(_shard(job_id, 1))
            assert await tx.jobs.store_shard_result(_shard(job_id, 0))
            assert not await tx.jobs.store_shard_result(_shard(job_id, 1))
            assert await tx.jobs.stored_shards(job_id) == {0, 1}
        async with uow() as tx:
            assert not await tx.jobs.store_shard_result(_shard(job_id, 0))
            assert await tx.jobs.stored_shards(job_id) == {0, 1}
            assert await tx.jobs.shard_results(job_id) == [_shard(job_id, 0), _shard(job_id, 1)]
            assert await tx.jobs.shard_results(_id()) == []

    async def test_the_job_queries_follow_the_projection(self, uow) -> None:
        job_id, actor = _id(), EventMetadata(actor=_id())
        async with uow() as tx:
            assert await tx.jobs.progress(job_id) == ("", 0, 0)
            await tx.jobs.save(await tx.jobs.load(job_id), _submitted(job_id), actor)
            assert await tx.jobs.progress(job_id) == ("queued", 2, 0)  # read in the same tx
            assert await tx.jobs.active_count(actor.actor) == 1
            assert job_id not in await tx.jobs.running()
        async with uow() as tx:
            assert await tx.jobs.active_count(actor.actor) == 1
            await tx.jobs.save(
                await tx.jobs.load(job_id), [BatchJobPlanned(job_id=job_id, shards=2)], META
            )
            await tx.jobs.store_shard_result(_shard(job_id, 1))
            assert job_id in await tx.jobs.running()
            assert await tx.jobs.progress(job_id) == ("running", 2, 1)
        async with uow() as tx:
            assert job_id in await tx.jobs.running()
            assert await tx.jobs.active_count(actor.actor) == 1
            assert await tx.jobs.active_count(_id()) == 0
            await tx.jobs.save(await tx.jobs.load(job_id), [BatchJobCancelled(job_id=job_id)], META)
        async with uow() as tx:
            assert job_id not in await tx.jobs.running()
            assert await tx.jobs.active_count(actor.actor) == 0
            assert await tx.jobs.progress(job_id) == ("cancelled", 2, 1)

    async def test_the_gate_lookups_follow_the_projection(self, uow) -> None:
        model, first, second = _id(), _id(), _id()
        cand, base = _id(), _id()
        async with uow() as tx:
            for gate_id in (first, second):
                state = await tx.gates.load(gate_id)
                await tx.gates.save(state, _requested(gate_id, model), META)
            evaluating = GateEvaluationsRequested(
                gate_id=first, candidate_job_id=cand, baseline_job_id=base, submitted=[cand]
            )
            await tx.gates.save(await tx.gates.load(first), [evaluating], META)
            assert await tx.gates.waiting_on(cand) == [first]
        async with uow() as tx:
            assert await tx.gates.waiting_on(cand) == [first]
            assert await tx.gates.waiting_on(base) == [first]
            assert await tx.gates.waiting_on(_id()) == []
            assert await tx.gates.submitted_by(cand) == first
            assert await tx.gates.submitted_by(base) is None
            assert await tx.gates.outcomes(model, "v2") == []
            await tx.gates.save(
                await tx.gates.load(first), [GateErrored(gate_id=first, reason="x")], META
            )
        async with uow() as tx:
            assert await tx.gates.waiting_on(cand) == []
            await tx.gates.save(
                await tx.gates.load(second), [GateErrored(gate_id=second, reason="y")], META
            )
        async with uow() as tx:
            outcomes = await tx.gates.outcomes(model, "v2")
            assert await tx.gates.outcomes(model, "v1") == []
        assert [o.gate_id for o in outcomes] == [second, first]  # newest decision first
        assert {(o.model_name, o.baseline_version, o.verdict) for o in outcomes} == {
            (model, "v1", "ERRORED")
        }
        assert outcomes[0].decided_at > outcomes[1].decided_at


@pytest.fixture(scope="module")
async def contract_engine(server_urls) -> AsyncIterator[Any]:
    """An engine on a database of this module's own: its keys must not switch on API-key checks
    for the tests that share the test database (an active key makes every route need one)."""
    from settings import Settings
    from storage.connections import create_engine
    from tests.conftest import isolated

    base = Settings().changed(
        database={"url": server_urls["database_url"]}, redis={"url": server_urls["redis_url"]}
    )
    async with isolated(base, CONTRACT_REDIS_DB, "contract") as own:
        engine = create_engine(
            own.database.url,
            pool_size=4,
            pool_timeout_s=10,
            statement_timeout_ms=30_000,
            lock_timeout_ms=10_000,
            idle_in_transaction_timeout_ms=60_000,
            keepalive_s=30,
        )
        yield engine
        await engine.dispose()


class _MovingClock(FakeClock):
    """Time moves a millisecond on every reading, as PostgreSQL's does between transactions."""

    def now(self) -> datetime:
        self.advance(0.001)
        return self.current


class TestFakes(StoreContract):
    """The in-memory fakes the service-layer tests use."""

    @pytest.fixture
    def uow(self) -> FakeUnitOfWorkFactory:
        return FakeUnitOfWorkFactory(
            FakeDatabase(clock=_MovingClock(datetime(2030, 1, 1, tzinfo=UTC)))
        )

    async def projected(self, uow, kind: str, aggregate_id: str) -> dict[Any, list[dict]]:
        projection = KINDS[kind][0]
        store = getattr(uow(), kind)
        key = projection.key
        found = {t: [r for r in store.rows(t) if r[key] == aggregate_id] for t in projection.tables}
        return {t: rows for t, rows in found.items() if rows}


class TestPostgres(StoreContract):
    """The PostgreSQL unit of work on the test server."""

    @pytest.fixture
    def uow(self, contract_engine) -> Any:
        from storage.unit_of_work import unit_of_work_factory

        factory = unit_of_work_factory(contract_engine)
        factory.engine = contract_engine  # type: ignore[attr-defined]
        return factory

    async def projected(self, uow, kind: str, aggregate_id: str) -> dict[Any, list[dict]]:
        projection = KINDS[kind][0]
        found = {}
        async with uow.engine.connect() as conn:
            for table in projection.tables:
                q = select(table).where(table.c[projection.key] == aggregate_id)
                rows = [
                    dict(r._mapping) for r in await conn.execute(q.order_by(*table.primary_key))
                ]
                if rows:
                    found[table] = rows
        return found
