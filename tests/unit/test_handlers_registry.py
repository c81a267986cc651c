"""Registry use-case handlers against in-memory fakes of their ports (no PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

import domain.handlers
from domain.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RollbackModel,
    TagModelVersion,
)
from domain.errors import ConcurrencyConflict, Conflict, InvalidInput, NotFound, ServiceUnavailable
from domain.handlers import in_transaction
from domain.handlers.registry import (
    archive_model_version,
    demote_model_version,
    model_state,
    promote_model_version,
    register_model_version,
    rollback_model,
    tag_model_version,
)
from domain.registry import ARCHIVED, PROD, STAGING
from events.base import EventMetadata
from events.registry import (
    ArtifactMetadata,
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
)
from events.streams import model_stream_id
from tests.unit.fakes import (
    FakeArtifactStore,
    FakeInspector,
    FakeRegistrationLock,
    FakeUnitOfWorkFactory,
)

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")
STREAM = model_stream_id("m")


class Registry:
    """The ports of the registry handlers, wired to fakes."""

    def __init__(self) -> None:
        self.uow = FakeUnitOfWorkFactory()
        self.store = FakeArtifactStore({"a.pt": b"weights-a", "b.pt": b"weights-b"})
        self.inspector = FakeInspector(bad={"bad.pt"})
        self.lock = FakeRegistrationLock()
        self.store.sources["bad.pt"] = b"not a model"

    async def register(self, version: str = "v1", source: str = "a.pt", **kw):
        """Register ``source`` as m ``version``."""
        args = {"tags": {}, "reason": None, "metadata_override": None, **kw}
        return await register_model_version(
            model_name=kw.pop("model_name", "m"), model_version=version, source=source,
            tags=args["tags"], reason=args["reason"], metadata_override=args["metadata_override"],
            metadata=META, uow=self.uow, lock=self.lock, store=self.store,
            inspector=self.inspector,
        )  # fmt: skip

    def events(self) -> list:
        """Committed events of model m."""
        return self.uow.db.events(STREAM)


@pytest.fixture
def reg() -> Registry:
    """Fresh fakes per test."""
    return Registry()


@pytest.fixture
def no_backoff(monkeypatch) -> None:
    """Lost races retry without sleeping."""

    async def instant(attempt: int) -> None:
        return None

    monkeypatch.setattr(domain.handlers, "conflict_backoff", instant)


async def test_register_stores_the_file_and_records_the_version(reg: Registry) -> None:
    result = await reg.register("v1", tags={"team": "vision"}, reason="first")
    assert result.changed
    [event] = reg.events()
    assert isinstance(event, ModelVersionRegistered)
    assert event.artifact_uri == "mem://m/v1/model.pt"
    assert event.size_bytes == len(b"weights-a") and len(event.sha256) == 64
    assert event.tags == {"team": "vision"} and event.reason == "first"
    assert event.metadata.architecture == "mnist_cnn"
    assert reg.store.files[("m", "v1")] == b"weights-a"
    assert ("m", "v1") in reg.store.metadata
    assert reg.lock.acquired == [("m", "v1")] and not reg.lock.held
    assert result.state.versions["v1"].status == STAGING


async def test_register_keeps_a_metadata_override(reg: Registry) -> None:
    override = ArtifactMetadata(architecture="custom", num_classes=3, class_names=["a", "b", "c"])
    await reg.register("v1", metadata_override=override)
    assert reg.events()[0].metadata == override
    assert reg.store.metadata[("m", "v1")] == override


async def test_register_same_file_again_is_an_idempotent_success(reg: Registry) -> None:
    await reg.register("v1")
    again = await reg.register("v1")
    assert not again.changed and again.recorded == []
    assert len(reg.events()) == 1
    assert reg.store.puts == [("m", "v1")]  # the stored file was not copied twice
    assert reg.inspector.inspected == ["a.pt"]


async def test_register_other_file_under_same_version_is_a_conflict(reg: Registry) -> None:
    await reg.register("v1", source="a.pt")
    with pytest.raises(Conflict, match="already registered with sha256"):
        await reg.register("v1", source="b.pt")
    assert reg.store.files[("m", "v1")] == b"weights-a"  # the winner's file is untouched
    assert len(reg.events()) == 1 and reg.store.discarded == []


async def test_concurrent_registrations_of_one_version_leave_the_winners_file(
    reg: Registry,
) -> None:
    results = await asyncio.gather(
        reg.register("v1", source="a.pt"), reg.register("v1", source="b.pt"),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(isinstance(r, Conflict) for r in results) == 1
    [event] = reg.events()
    by_sha = {
        reg.store.digest(reg.store.resolve_source(s))[0]: reg.store.sources[s]
        for s in ("a.pt", "b.pt")
    }
    assert reg.store.files[("m", "v1")] == by_sha[event.sha256]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"model_name": "Bad Name"}, InvalidInput, "invalid model name"),
        ({"version": "../x"}, InvalidInput, "invalid model version"),
        ({"source": "/etc/passwd"}, InvalidInput, "not a file under an allowed root"),
        ({"source": "bad.pt"}, InvalidInput, "not a loadable model artifact"),
        ({"tags": {"bad key": "x"}}, InvalidInput, "invalid tag key"),
        ({"reason": "x" * 1001}, InvalidInput, "limit is 1000"),
        (
            {"metadata_override": ArtifactMetadata(architecture="a\x00b")},
            InvalidInput,
            "NUL character",
        ),
    ],
)
async def test_register_refuses_bad_input_before_storing_anything(
    reg: Registry, kwargs: dict, error: type, text: str
) -> None:
    version = kwargs.pop("version", "v1")
    with pytest.raises(error, match=text):
        await reg.register(version, **kwargs)
    assert reg.store.files == {} and reg.uow.db.log == []


async def test_register_discards_the_copy_when_the_metadata_write_fails(reg: Registry) -> None:
    reg.store.fail_metadata = OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        await reg.register("v1")
    assert reg.store.discarded == [("m", "v1")]
    assert reg.store.files == {} and reg.uow.db.log == []


async def test_register_discards_the_copy_when_the_commit_fails(reg: Registry) -> None:
    reg.uow.fail_next_commits(2, ServiceUnavailable("PostgreSQL is unavailable"))
    with pytest.raises(ServiceUnavailable):
        await reg.register("v1")
    assert reg.store.discarded == [("m", "v1")]
    assert reg.store.files == {} and reg.uow.db.log == []
    assert not reg.lock.held


async def test_promote_records_the_previous_prod_and_is_idempotent(reg: Registry) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
    )
    result = await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v2", reason="better"), META, reg.uow
    )
    event = reg.events()[-1]
    assert isinstance(event, ModelVersionPromoted)
    assert (event.model_version, event.previous_prod, event.reason) == ("v2", "v1", "better")
    assert result.state.prod == "v2" and result.state.versions["v1"].status == STAGING
    repeat = await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v2"), META, reg.uow
    )
    assert not repeat.changed and len(reg.events()) == 4


async def test_promote_unknown_model_or_version_is_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound, match="unknown model"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
        )
    await reg.register("v1")
    with pytest.raises(NotFound, match="known: v1"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v9"), META, reg.uow
        )


async def test_rollback_restores_the_previous_prod(reg: Registry) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    for v in ("v1", "v2"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version=v), META, reg.uow
        )
    result = await rollback_model(RollbackModel(model_name="m", reason="regressed"), META, reg.uow)
    event = reg.events()[-1]
    assert isinstance(event, ModelVersionRolledBack)
    assert (event.from_version, event.to_version) == ("v2", "v1")
    assert result.state.prod == "v1" and result.state.versions["v2"].status == STAGING
    with pytest.raises(Conflict, match="no earlier prod"):
        await rollback_model(RollbackModel(model_name="m"), META, reg.uow)


async def test_rollback_without_prod_is_a_conflict(reg: Registry) -> None:
    await reg.register("v1")
    with pytest.raises(Conflict, match="no prod version"):
        await rollback_model(RollbackModel(model_name="m"), META, reg.uow)
    assert len(reg.events()) == 1


async def test_demote_leaves_the_model_without_prod(reg: Registry) -> None:
    await reg.register("v1")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
    )
    result = await demote_model_version(
        DemoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
    )
    assert isinstance(reg.events()[-1], ModelVersionDemoted)
    assert result.state.prod is None and (await model_state("m", reg.uow)).prod is None
    with pytest.raises(Conflict, match="is not prod"):
        await demote_model_version(
            DemoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
        )


async def test_tag_merges_and_removes_tags(reg: Registry) -> None:
    await reg.register("v1", tags={"team": "vision", "stage": "exp"})
    await tag_model_version(
        TagModelVersion(model_name="m", model_version="v1", tags={"stage": "", "owner": "ana"}),
        META,
        reg.uow,
    )
    assert isinstance(reg.events()[-1], ModelVersionTagged)
    state = await model_state("m", reg.uow)
    assert state.versions["v1"].tags == {"team": "vision", "owner": "ana"}
    with pytest.raises(InvalidInput, match="no tags"):
        await tag_model_version(
            TagModelVersion(model_name="m", model_version="v1", tags={}), META, reg.uow
        )


async def test_archive_retires_a_version_once_and_never_prod(reg: Registry) -> None:
    await reg.register("v1")
    await reg.register("v2", source="b.pt")
    await promote_model_version(
        PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
    )
    with pytest.raises(Conflict, match="is prod"):
        await archive_model_version(
            ArchiveModelVersion(model_name="m", model_version="v1"), META, reg.uow
        )
    result = await archive_model_version(
        ArchiveModelVersion(model_name="m", model_version="v2"), META, reg.uow
    )
    assert isinstance(reg.events()[-1], ModelVersionArchived)
    assert result.state.versions["v2"].status == ARCHIVED
    again = await archive_model_version(
        ArchiveModelVersion(model_name="m", model_version="v2"), META, reg.uow
    )
    assert not again.changed
    with pytest.raises(Conflict, match="archived"):
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v2"), META, reg.uow
        )
    assert (await model_state("m", reg.uow)).versions["v1"].status == PROD


async def test_a_lost_race_is_retried_on_fresh_state(reg: Registry, no_backoff) -> None:
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
        PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
    )
    attempts = reg.uow.created[before:]
    assert [u.rolled_back for u in attempts] == [True, False] and attempts[1].committed
    assert [type(e).__name__ for e in reg.events()] == [
        "ModelVersionRegistered", "ModelVersionTagged", "ModelVersionPromoted",
    ]  # fmt: skip
    assert result.recorded[0].stream_version == 3
    assert result.state.versions["v1"].tags == {"x": "1"}  # decided on the fresh state


async def test_in_transaction_gives_up_after_max_attempts(
    reg: Registry, no_backoff, monkeypatch
) -> None:
    await reg.register("v1")
    monkeypatch.setattr(domain.handlers, "MAX_ATTEMPTS", 5)
    reg.uow.interfere = lambda db, stream_id: db.append_now(
        stream_id, [ModelVersionTagged(model_name="m", model_version="v1", tags={"x": "1"})]
    )
    before = len(reg.uow.created)
    with pytest.raises(Conflict, match="heavy concurrent change") as raised:
        await promote_model_version(
            PromoteModelVersion(model_name="m", model_version="v1"), META, reg.uow
        )
    assert not isinstance(raised.value, ConcurrencyConflict)
    attempts = reg.uow.created[before:]
    assert len(attempts) == 5 and not any(u.committed for u in attempts)
    assert not any(isinstance(e, ModelVersionPromoted) for e in reg.events())


async def test_in_transaction_does_not_retry_other_errors(reg: Registry) -> None:
    calls = []

    async def work(tx) -> None:
        calls.append(tx)
        raise NotFound("nothing here")

    with pytest.raises(NotFound):
        await in_transaction(reg.uow, work)
    assert len(calls) == 1 and calls[0].rolled_back and not calls[0].committed
