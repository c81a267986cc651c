"""Registration when the commit's outcome cannot be known: the copied files stay."""

from __future__ import annotations

from types import TracebackType

import pytest

from domain.errors import ServiceUnavailable
from tests.unit.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory
from tests.unit.wiring import RegistryFakes

pytestmark = pytest.mark.anyio
DOWN = ServiceUnavailable("postgresql is unavailable; retry shortly")


class _LostReply(FakeUnitOfWork):
    """Commits, then loses the reply: the caller sees an error, and PostgreSQL goes away."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wrote = bool(self.pending)
        await super().__aexit__(exc_type, exc, tb)
        if wrote and self.committed:
            self.factory.down = True  # type: ignore[attr-defined]
            raise DOWN


class _Unreachable:
    async def __aenter__(self):
        raise DOWN

    async def __aexit__(self, *exc) -> None:
        return None


class _Factory(FakeUnitOfWorkFactory):
    down = False

    def __call__(self):
        if self.down:
            return _Unreachable()
        uow = _LostReply(self.db, self)
        self.created.append(uow)
        return uow


async def test_a_commit_whose_reply_was_lost_keeps_the_files() -> None:
    reg = RegistryFakes()
    reg.uow = _Factory()
    with pytest.raises(ServiceUnavailable):
        await reg.register("v1")
    assert len(reg.events()) == 1  # the registration did land
    assert reg.store.discarded == []  # so its file must stay
    assert reg.store.files[("m", "v1")] == b"weights-a"


async def test_a_commit_known_to_have_failed_discards_the_files() -> None:
    reg = RegistryFakes()
    reg.uow.fail_next_commits(1, DOWN)
    with pytest.raises(ServiceUnavailable):
        await reg.register("v1")
    assert reg.events() == [] and reg.store.discarded == [("m", "v1")]
