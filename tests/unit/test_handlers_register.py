"""The register handler against in-memory fakes of its ports (no PostgreSQL, no files)."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import Conflict, InvalidInput, ServiceUnavailable
from domain.registry.decisions import STAGING
from events.registry import ArtifactMetadata, ModelVersionRegistered
from tests.unit.wiring import RegistryFakes

pytestmark = pytest.mark.anyio


@pytest.fixture
def reg() -> RegistryFakes:
    """Fresh fakes per test."""
    return RegistryFakes()


async def test_register_stores_the_file_and_records_the_version(reg: RegistryFakes) -> None:
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


async def test_register_keeps_a_metadata_override(reg: RegistryFakes) -> None:
    override = ArtifactMetadata(architecture="custom", num_classes=3, class_names=["a", "b", "c"])
    await reg.register("v1", metadata_override=override)
    assert reg.events()[0].metadata == override
    assert reg.store.metadata[("m", "v1")] == override


async def test_register_same_file_again_is_an_idempotent_success(reg: RegistryFakes) -> None:
    await reg.register("v1")
    again = await reg.register("v1")
    assert not again.changed and again.recorded == []
    assert len(reg.events()) == 1
    assert reg.store.puts == [("m", "v1")]  # the stored file was not copied twice
    assert reg.inspector.inspected == ["a.pt"]


async def test_register_other_file_under_same_version_is_a_conflict(reg: RegistryFakes) -> None:
    await reg.register("v1", source="a.pt")
    with pytest.raises(Conflict, match="already registered with sha256"):
        await reg.register("v1", source="b.pt")
    assert reg.store.files[("m", "v1")] == b"weights-a"  # the winner's file is untouched
    assert len(reg.events()) == 1 and reg.store.discarded == []


async def test_concurrent_registrations_of_one_version_leave_the_winners_file(
    reg: RegistryFakes,
) -> None:
    results = await asyncio.gather(
        reg.register("v1", source="a.pt"),
        reg.register("v1", source="b.pt"),
        return_exceptions=True,
    )
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
    reg: RegistryFakes, kwargs: dict, error: type, text: str
) -> None:
    version = kwargs.pop("version", "v1")
    with pytest.raises(error, match=text):
        await reg.register(version, **kwargs)
    assert reg.store.files == {} and reg.uow.db.log == []


async def test_register_discards_the_copy_when_the_metadata_write_fails(reg: RegistryFakes) -> None:
    reg.store.fail_metadata = OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        await reg.register("v1")
    assert reg.store.discarded == [("m", "v1")]
    assert reg.store.files == {} and reg.uow.db.log == []


async def test_register_discards_the_copy_when_the_commit_fails(reg: RegistryFakes) -> None:
    reg.uow.fail_next_commits(2, ServiceUnavailable("PostgreSQL is unavailable"))
    with pytest.raises(ServiceUnavailable):
        await reg.register("v1")
    assert reg.store.discarded == [("m", "v1")]
    assert reg.store.files == {} and reg.uow.db.log == []
    assert not reg.lock.held
