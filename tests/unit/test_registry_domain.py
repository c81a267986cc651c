"""The registered-model aggregate: decisions and folds, no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.errors import Conflict, InvalidInput, NotFound
from domain.registry.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RecordRegistration,
    RollbackModel,
    TagModelVersion,
)
from domain.registry.decisions import ModelState, decide, evolve, fold
from events.base import EventMetadata, RecordedEvent
from events.codec import decode_event, encode_event, event_type_name
from events.registry import ModelVersionPromoted, ModelVersionRegistered, ModelVersionRolledBack

META = EventMetadata(actor="tester")


class Model:
    """A tiny in-memory driver of the aggregate for these tests."""

    def __init__(self, name: str = "m") -> None:
        self.state = ModelState(model_name=name)
        self.history: list[RecordedEvent] = []

    def run(self, command) -> list:
        events = decide(self.state, command)
        for e in events:
            r = RecordedEvent(
                position=len(self.history) + 1,
                stream_id="model-m",
                stream_version=self.state.stream_version + 1,
                event_id=uuid.uuid4(),
                recorded_at=datetime.now(UTC),
                metadata=EventMetadata(actor="tester"),
                event=e,
            )
            self.history.append(r)
            evolve(self.state, r)
        return events

    def register(self, version: str, sha: str = "a" * 64) -> list:
        return self.run(
            RecordRegistration(
                model_name="m",
                model_version=version,
                artifact_uri=f"m/{version}/model.pt",
                sha256=sha,
                size_bytes=10,
            )
        )


def test_new_version_starts_in_staging() -> None:
    m = Model()
    m.register("v1")
    assert m.state.versions["v1"].status == "staging"
    assert m.state.prod is None


def test_reregistering_same_sha_is_idempotent_and_other_sha_conflicts() -> None:
    m = Model()
    m.register("v1", "a" * 64)
    assert m.register("v1", "a" * 64) == []
    with pytest.raises(Conflict, match="immutable"):
        m.register("v1", "b" * 64)
    assert m.state.versions["v1"].sha256 == "a" * 64


def test_promote_demotes_previous_prod_in_the_same_event() -> None:
    m = Model()
    m.register("v1")
    m.register("v2", "b" * 64)
    m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META))
    (event,) = m.run(PromoteModelVersion(model_name="m", model_version="v2", metadata=META))
    assert isinstance(event, ModelVersionPromoted)
    assert event.previous_prod == "v1"
    assert m.state.versions["v1"].status == "staging"
    assert m.state.versions["v2"].status == "prod"
    assert [v for v, s in m.state.versions.items() if s.status == "prod"] == ["v2"]


def test_promoting_current_prod_is_a_no_op() -> None:
    m = Model()
    m.register("v1")
    m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META))
    assert m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META)) == []


def test_rollback_restores_the_previous_prod_and_says_which() -> None:
    m = Model()
    for v, sha in (("v1", "a"), ("v2", "b"), ("v3", "c")):
        m.register(v, sha * 64)
    for v in ("v1", "v2", "v3"):
        m.run(PromoteModelVersion(model_name="m", model_version=v, metadata=META))
    (event,) = m.run(RollbackModel(model_name="m", metadata=META))
    assert isinstance(event, ModelVersionRolledBack)
    assert (event.from_version, event.to_version) == ("v3", "v2")
    (event,) = m.run(RollbackModel(model_name="m", metadata=META))
    assert (event.from_version, event.to_version) == ("v2", "v1")
    assert m.state.prod == "v1"
    with pytest.raises(Conflict, match="no earlier prod"):
        m.run(RollbackModel(model_name="m", metadata=META))


def test_rollback_skips_archived_versions() -> None:
    m = Model()
    for v, sha in (("v1", "a"), ("v2", "b"), ("v3", "c")):
        m.register(v, sha * 64)
    for v in ("v1", "v2", "v3"):
        m.run(PromoteModelVersion(model_name="m", model_version=v, metadata=META))
    m.run(ArchiveModelVersion(model_name="m", model_version="v2", metadata=META))
    (event,) = m.run(RollbackModel(model_name="m", metadata=META))
    assert event.to_version == "v1"


def test_rollback_without_prod_or_model_is_refused() -> None:
    m = Model()
    with pytest.raises(NotFound):
        m.run(RollbackModel(model_name="m", metadata=META))
    m.register("v1")
    with pytest.raises(Conflict, match="no prod"):
        m.run(RollbackModel(model_name="m", metadata=META))


def test_archive_and_demote_rules() -> None:
    m = Model()
    m.register("v1")
    m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META))
    with pytest.raises(Conflict, match="is prod"):
        m.run(ArchiveModelVersion(model_name="m", model_version="v1", metadata=META))
    m.run(DemoteModelVersion(model_name="m", model_version="v1", metadata=META))
    assert m.state.prod is None
    m.run(ArchiveModelVersion(model_name="m", model_version="v1", metadata=META))
    with pytest.raises(Conflict, match="archived"):
        m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META))


def test_tags_merge_and_remove() -> None:
    m = Model()
    m.register("v1")
    m.run(
        TagModelVersion(
            model_name="m", model_version="v1", tags={"a": "1", "b": "2"}, metadata=META
        )
    )
    m.run(TagModelVersion(model_name="m", model_version="v1", tags={"a": ""}, metadata=META))
    assert m.state.versions["v1"].tags == {"b": "2"}
    with pytest.raises(InvalidInput):
        m.run(
            TagModelVersion(
                model_name="m", model_version="v1", tags={"bad key": "x"}, metadata=META
            )
        )


@pytest.mark.parametrize("name", ["", "../etc", "UPPER", "a/b", "x" * 65, "-lead", "a b"])
def test_bad_model_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        decide(ModelState(model_name=name), RollbackModel(model_name=name, metadata=META))


@pytest.mark.parametrize("version", ["", "..", "../v1", "v/1", "v 1", "x" * 65])
def test_bad_versions_are_refused(version: str) -> None:
    m = Model()
    with pytest.raises(InvalidInput, match="invalid model version"):
        m.register(version)


def test_unknown_version_lists_known_ones() -> None:
    m = Model()
    m.register("v1")
    with pytest.raises(NotFound, match=r"known: v1"):
        m.run(PromoteModelVersion(model_name="m", model_version="v9", metadata=META))


def test_fold_of_history_equals_live_state() -> None:
    m = Model()
    m.register("v1")
    m.register("v2", "b" * 64)
    m.run(PromoteModelVersion(model_name="m", model_version="v1", metadata=META))
    m.run(PromoteModelVersion(model_name="m", model_version="v2", metadata=META))
    m.run(RollbackModel(model_name="m", metadata=META))
    assert fold("m", m.history) == m.state


def test_every_event_round_trips_through_the_codec() -> None:
    m = Model()
    m.register("v1")
    m.register("v2", "b" * 64)
    m.run(PromoteModelVersion(model_name="m", model_version="v1", reason="good", metadata=META))
    m.run(PromoteModelVersion(model_name="m", model_version="v2", metadata=META))
    m.run(RollbackModel(model_name="m", metadata=META))
    m.run(TagModelVersion(model_name="m", model_version="v1", tags={"k": "v"}, metadata=META))
    m.run(ArchiveModelVersion(model_name="m", model_version="v2", metadata=META))
    for r in m.history:
        assert decode_event(event_type_name(r.event), encode_event(r.event)) == r.event
    assert isinstance(m.history[0].event, ModelVersionRegistered)
    with pytest.raises(ValueError, match="unknown event type"):
        decode_event("Nope", b"{}")
