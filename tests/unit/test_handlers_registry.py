"""Registry command handlers and the lost-race retry, against in-memory fakes (no PostgreSQL)."""

from __future__ import annotations

import pytest

import domain.transactions
from domain.errors import ConcurrencyConflict, Conflict, InvalidInput, NotFound
from domain.registry.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RollbackModel,
    TagModelVersion,
)
from domain.registry.decisions import ARCHIVED, PROD, STAGING
from domain.registry.handlers import change_version, model_state, promote_model_version
from domain.transactions import in_transaction
from events.base import EventMetadata
from events.registry import (
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRolledBack,
    ModelVersionTagged,
)
from tests.unit.wiring import RegistryFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


@pytest.fixture
def reg() -> RegistryFakes:
    """Fresh fakes per test."""
    return RegistryFakes()


@pytest.fixture
def no_backoff(monkeypatch) -> None:
    """Lost races retry without sleeping."""

    async def instant(attempt: int) -> None:
        return None

    monkeypatch.setattr(domain.transactions, "conflict_backoff", instant)


async def test_promote_records_the_previous_prod_and_is_idempotent(reg: RegistryFakes) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    result = await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v2", reason="better", metadata=META),
        reg.ports,
    )
    event = reg.events()[-1]
    assert isinstance(event, ModelVersionPromoted)
    assert (event.model_version, event.previous_prod, event.reason) == ("v2", "v1", "better")
    assert result.state.prod == "v2" and result.state.versions["v1"].status == STAGING
    repeat = await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v2", metadata=META), reg.ports
    )
    assert not repeat.changed and len(reg.events()) == 4


async def test_promote_unknown_model_or_version_is_not_found(reg: RegistryFakes) -> None:
    with pytest.raises(NotFound, match="unknown model"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
        )
    await reg.register("v1")
    with pytest.raises(NotFound, match="known: v1"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v9", metadata=META), reg.ports
        )


async def test_rollback_restores_the_previous_prod(reg: RegistryFakes) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    for v in ("v1", "v2"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version=v, metadata=META), reg.ports
        )
    result = await change_version(
        RollbackModel(model_name="m", reason="regressed", metadata=META), reg.ports
    )
    event = reg.events()[-1]
    assert isinstance(event, ModelVersionRolledBack)
    assert (event.from_version, event.to_version) == ("v2", "v1")
    assert result.state.prod == "v1" and result.state.versions["v2"].status == STAGING
    with pytest.raises(Conflict, match="no earlier prod"):
        await change_version(RollbackModel(model_name="m", metadata=META), reg.ports)


async def test_rollback_without_prod_is_a_conflict(reg: RegistryFakes) -> None:
    await reg.register("v1")
    with pytest.raises(Conflict, match="no prod version"):
        await change_version(RollbackModel(model_name="m", metadata=META), reg.ports)
    assert len(reg.events()) == 1


async def test_demote_leaves_the_model_without_prod(reg: RegistryFakes) -> None:
    await reg.register("v1")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    result = await change_version(
        DemoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    assert isinstance(reg.events()[-1], ModelVersionDemoted)
    assert result.state.prod is None and (await model_state("m", reg.uow)).prod is None
    with pytest.raises(Conflict, match="is not prod"):
        await change_version(
            DemoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
        )


async def test_tag_merges_and_removes_tags(reg: RegistryFakes) -> None:
    await reg.register("v1", tags={"team": "vision", "stage": "exp"})
    await change_version(
        TagModelVersion(
            model_name="m", model_version="v1", tags={"stage": "", "owner": "ana"}, metadata=META
        ),
        reg.ports,
    )
    assert isinstance(reg.events()[-1], ModelVersionTagged)
    state = await model_state("m", reg.uow)
    assert state.versions["v1"].tags == {"team": "vision", "owner": "ana"}
    with pytest.raises(InvalidInput, match="no tags"):
        await change_version(
            TagModelVersion(model_name="m", model_version="v1", tags={}, metadata=META), reg.ports
        )


async def test_archive_retires_a_version_once_and_never_prod(reg: RegistryFakes) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    with pytest.raises(Conflict, match="is prod"):
        await change_version(
            ArchiveModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
        )
    result = await change_version(
        ArchiveModelVersion(model_name="m", model_version="v2", metadata=META), reg.ports
    )
    assert isinstance(reg.events()[-1], ModelVersionArchived)
    assert result.state.versions["v2"].status == ARCHIVED
    again = await change_version(
        ArchiveModelVersion(model_name="m", model_version="v2", metadata=META), reg.ports
    )
    assert not again.changed
    with pytest.raises(Conflict, match="archived"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v2", metadata=META), reg.ports
        )
    assert (await model_state("m", reg.uow)).versions["v1"].status == PROD


async def test_a_lost_race_is_retried_on_fresh_state(reg: RegistryFakes, no_backoff) -> None:
    await reg.register("v1")
    raced = []

    def concurrent_tag(db, stream_id: str) -> None:
        if not raced:  # another process tags v1 between our load and our append, once
            raced.append(stream_id)
            db.append_now(
                stream_id, [ModelVersionTagged(model_name="m", model_version="v1", tags={"x": "1"})]
            )

    reg.uow.interfere = concurrent_tag
    before = len(reg.uow.created)
    result = await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
    )
    attempts = reg.uow.created[before:]
    assert [u.rolled_back for u in attempts] == [True, False] and attempts[1].committed
    assert [type(e).__name__ for e in reg.events()] == [
        "ModelVersionRegistered",
        "ModelVersionTagged",
        "ModelVersionPromoted",
    ]
    assert result.recorded[0].stream_version == 3
    assert result.state.versions["v1"].tags == {"x": "1"}  # decided on the fresh state


async def test_in_transaction_gives_up_after_max_attempts(
    reg: RegistryFakes, no_backoff, monkeypatch
) -> None:
    await reg.register("v1")
    monkeypatch.setattr(domain.transactions, "MAX_ATTEMPTS", 5)
    reg.uow.interfere = lambda db, stream_id: db.append_now(
        stream_id, [ModelVersionTagged(model_name="m", model_version="v1", tags={"x": "1"})]
    )
    before = len(reg.uow.created)
    with pytest.raises(Conflict, match="heavy concurrent change") as raised:
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v1", metadata=META), reg.ports
        )
    assert not isinstance(raised.value, ConcurrencyConflict)
    attempts = reg.uow.created[before:]
    assert len(attempts) == 5 and not any(u.committed for u in attempts)
    assert not any(isinstance(e, ModelVersionPromoted) for e in reg.events())


async def test_in_transaction_does_not_retry_other_errors(reg: RegistryFakes) -> None:
    calls = []

    async def work(tx) -> None:
        calls.append(tx)
        raise NotFound("nothing here")

    with pytest.raises(NotFound):
        await in_transaction(reg.uow, work)
    assert len(calls) == 1 and calls[0].rolled_back and not calls[0].committed
