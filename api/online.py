"""Online evaluation endpoints: a model's shadow and canary (running, and recently ended)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromPath

from api.deps import Bus
from domain.online.commands import GetOnline
from domain.online.state import CanaryRun, Ended, ShadowRun


class ShadowView(msgspec.Struct, frozen=True):
    """The running shadow (its latest verdict and figures inside) and the shadows that ended."""

    model_name: str
    shadow: ShadowRun | None
    ended: list[Ended]


class CanaryView(msgspec.Struct, frozen=True):
    """The running canary (step, share, figures at the last step) and the canaries that ended."""

    model_name: str
    canary: CanaryRun | None
    share: int | None
    ended: list[Ended]


class OnlineController(Controller):
    """A model's shadow and canary (docs/online.md)."""

    path = "/models/{name:str}"
    tags = ["online"]

    @get("/shadow", summary="A model's shadow and its sequential verdict")
    async def shadow(self, bus: Bus, name: FromPath[str]) -> ShadowView:
        """PASS, FAIL or INCONCLUSIVE with the figures, or null when none runs."""
        state = await bus.handle(GetOnline(model_name=name))
        ended = [e for e in state.ended if e.kind == "shadow"]
        return ShadowView(name, state.shadow, ended)

    @get("/canary", summary="A model's canary: step, share and checks")
    async def canary(self, bus: Bus, name: FromPath[str]) -> CanaryView:
        """The running canary, or null; the last ended ones with ABORTED or PROMOTED and why."""
        state = await bus.handle(GetOnline(model_name=name))
        ended = [e for e in state.ended if e.kind == "canary"]
        share = state.canary.share if state.canary else None
        return CanaryView(name, state.canary, share, ended)
