"""The message bus: a command reaches the one handler of its type, with its context's ports."""

from __future__ import annotations

import pytest

from domain.bus import MessageBus, bind
from domain.jobs.commands import CancelBatchJob
from domain.jobs.handlers import HANDLERS as JOBS
from domain.registry.commands import GetModel, PromoteModelVersion
from domain.registry.handlers import HANDLERS as REGISTRY
from events.base import EventMetadata
from tests.unit.wiring import JobFakes, RegistryFakes

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def test_a_command_reaches_its_handler_with_the_bound_ports() -> None:
    reg = RegistryFakes()
    await reg.register("v1")
    bus = MessageBus(bind(REGISTRY, reg.ports))
    result = await bus.handle(
        PromoteModelVersion(model_name="m", model_version="v1", metadata=META)
    )
    assert result.changed and reg.events()[-1] == result.recorded[0].event
    assert (await bus.handle(GetModel(model_name="m"))).prod == "v1"


async def test_a_command_no_handler_serves_here_is_refused_by_name() -> None:
    bus = MessageBus(bind(REGISTRY, RegistryFakes().ports))
    assert not bus.handles(CancelBatchJob)
    with pytest.raises(LookupError, match="CancelBatchJob"):
        await bus.handle(CancelBatchJob(job_id="x", metadata=META))


async def test_including_adds_a_context_and_keeps_the_others() -> None:
    reg, jobs = RegistryFakes(), JobFakes()
    bus = MessageBus(bind(REGISTRY, reg.ports)).including(bind(JOBS, jobs.ports))
    assert bus.handles(PromoteModelVersion) and bus.handles(CancelBatchJob)
