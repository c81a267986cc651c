"""The online part of a model's console page: capture policy, shadow and canary (live).

Read through the same query handlers as GET /models/{name}/capture-policy, /shadow and /canary;
the page polls ``/ui/models/NAME/online`` while a shadow or canary runs (docs/console.md).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Template

from api.deps import Bus
from api.ui.session import page
from domain import names
from domain.online.commands import GetOnline
from domain.online.judge import describe
from domain.online.state import CanaryRun, Ended, ShadowRun
from domain.traffic.commands import GetCapturePolicy
from events.online import Check, OnlineFigures

POLL_S = 1  # as the job and gate pages
ENDED = 5  # ended shadows and canaries shown


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2%}"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.2f} ms"


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v:+.4f}"


def check_row(k: Check) -> dict[str, str]:
    """One check's cells: estimate, interval, observations, and what it still needs."""
    interval = "—"
    if k.lower is not None and k.upper is not None:
        interval = f"{k.lower:+.4f} to {k.upper:+.4f}"
    needs = ""
    if k.outcome == "INCONCLUSIVE":
        needs = f"~{k.needed:,} more" if k.needed else "cannot be decided cheaply"
    return {
        "name": k.name,
        "outcome": k.outcome,
        "estimate": _signed(k.estimate),
        "interval": interval,
        "n": f"{k.n:,}",
        "needs": needs,
        "line": describe(k),
    }


def _needs(k: Check) -> str:
    """What an INCONCLUSIVE check still needs, in requests of the kind it counts."""
    if not k.needed:
        return f"{k.name}: cannot be decided cheaply at the rates seen"
    kind = "labelled requests" if k.name == "accuracy" else "paired requests"
    return f"{k.name} ~{k.needed:,} more {kind}"


def figure_rows(f: OnlineFigures | None) -> dict[str, Any] | None:
    """The paired figures of a verdict or step (prod and candidate side by side) and checks."""
    if f is None:
        return None
    return {
        "outcomes": f"{f.outcomes:,}",
        "labelled": f"{f.labelled:,}",
        "agreement": _pct(f.agreement),
        "pairs": [
            ("Accuracy on labelled requests", _pct(f.prod_accuracy), _pct(f.candidate_accuracy)),
            ("Error rate", _pct(f.prod_error_rate), _pct(f.candidate_error_rate)),
            ("p95 latency", _ms(f.prod_p95_ms), _ms(f.candidate_p95_ms)),
        ],
        "ratio": "—" if f.p95_ratio is None else f"{f.p95_ratio:.2f}×",
        "checks": [check_row(k) for k in f.checks],
        "pending": [_needs(k) for k in f.checks if k.outcome == "INCONCLUSIVE"],
    }


def shadow_view(s: ShadowRun | None) -> dict[str, Any] | None:
    """The running shadow as the page shows it."""
    if s is None:
        return None
    return {"run": s, "verdict": s.verdict or "WAITING", "figures": figure_rows(s.figures)}


def canary_view(c: CanaryRun | None) -> dict[str, Any] | None:
    """The running canary: its steps (the current one marked), the split, each step's checks."""
    if c is None:
        return None
    passed = {p.step: p for p in c.passed}
    steps = []
    for i, share in enumerate(c.steps):
        state = "passed" if i < c.step else "current" if i == c.step else "next"
        done = passed.get(i)
        steps.append(
            {
                "index": i + 1,
                "share": share,
                "state": state,
                "at": done.at if done else (c.step_started_at if i == c.step else None),
                "figures": figure_rows(done.figures) if done else None,
            }
        )
    return {
        "run": c,
        "share": c.share,
        "prod_share": 100 - c.share,
        "steps": steps,
        "figures": figure_rows(c.figures),
    }


def ended_view(e: Ended) -> dict[str, Any]:
    """A shadow or canary that ended, with its last figures."""
    tone = {"ABORTED": "fail", "PROMOTED": "pass", "APPROVAL-PENDING": "inconclusive"}
    return {"run": e, "tone": tone.get(e.outcome, "neutral"), "figures": figure_rows(e.figures)}


async def online_context(bus: Bus, name: str) -> dict[str, Any]:
    """Capture policy, shadow, canary and the recently ended runs of a model."""
    state = await bus.handle(GetOnline(model_name=name))
    policy = await bus.handle(GetCapturePolicy(model_name=name))
    return {
        "policy": policy,
        "shadow": shadow_view(state.shadow),
        "canary": canary_view(state.canary),
        "ended": [ended_view(e) for e in state.ended[:ENDED]],
        "online_active": state.shadow is not None or state.canary is not None,
        "poll_s": POLL_S,
    }


class OnlinePages(Controller):
    """The live online part of a model page."""

    path = "/"
    include_in_schema = False

    @get("/models/{name:str}/online")
    async def online(self, request: Request, bus: Bus, name: FromPath[str]) -> Template:
        """Capture, shadow and canary of a model (htmx polls it while one runs)."""
        name = names.check_model_name(name)
        return page(request, "model_online.html", name=name, **await online_context(bus, name))
