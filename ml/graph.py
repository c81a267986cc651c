"""The serving graph: a model traced, frozen and fused for inference where that is faster.

``torch.jit.optimize_for_inference`` folds the weights into constants and, on the CPU, runs the
convolutions in oneDNN's blocked layout with their ReLUs fused. Measured on the 2-core VM, one
torch thread: mnist_cnn 3,323 -> 4,209 img/s at batch 1 and 3,680 -> 8,156 at batch 32;
ResNet-18 85 -> 95 and 218 -> 244. ``torch.compile`` was slower here (3,865 img/s at batch 32)
and took 21 s to build, too long for a hot swap; the frozen graph builds in 0.1-0.4 s.

The graph is checked against the eager model on the same inputs before it serves, and the
eager model serves whenever the graph cannot be built or disagrees: an optimisation must
never change an answer.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
import torch

from ml.preprocess import EXPECTED_SIZE

T = TypeVar("T")
log = structlog.get_logger("serving")

# Logits may differ by float rounding (oneDNN sums in another order): ~1e-7 for mnist_cnn,
# ~2e-6 for ResNet-18. Anything near this bound is a different computation, not rounding.
TOLERANCE = 1e-3


@dataclass(frozen=True)
class ServingGraph:
    """What runs a version's forwards: ``run`` and which graph it is ("frozen" or "eager")."""

    run: Callable[[torch.Tensor], torch.Tensor]
    kind: str
    reason: str = ""  # why a requested frozen graph is not the one serving


def wanted(mode: str, device: torch.device) -> bool:
    """Whether ``mode`` asks for the frozen graph on ``device`` (auto: the CPU, where it was measured)."""
    return mode == "frozen" or (mode == "auto" and device.type == "cpu")


def serving_graph(
    module: torch.nn.Module, mode: str, device: torch.device, sizes: tuple[int, ...] = (1, 2)
) -> ServingGraph:
    """The fastest graph that answers as ``module`` does on inputs of batch ``sizes``."""
    if not wanted(mode, device):
        return ServingGraph(module, "eager")
    generator = torch.Generator().manual_seed(0)
    samples = [torch.rand((n, 1, *EXPECTED_SIZE), generator=generator).to(device) for n in sizes]
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # torch.jit is marked deprecated in favour of torch.compile, which measured slower
            # here (module docstring); the warning would only repeat at every load.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the check below decides
            # check_trace=False: _differs below checks every size; torch's own check compares
            # with torch.testing, which imports torch.distributed and sympy (~50 MB a process).
            traced = torch.jit.trace(module.eval(), samples[0], check_trace=False)
            frozen = torch.jit.optimize_for_inference(traced)
            disagreement = next(filter(None, (_differs(module, frozen, x) for x in samples)), "")
    except Exception as exc:  # any failure to build or run it means: serve the eager model
        return ServingGraph(module, "eager", f"the frozen graph could not be built: {exc}"[:300])
    if disagreement:
        return ServingGraph(module, "eager", f"the frozen graph {disagreement}")
    return ServingGraph(frozen, "frozen")


def _differs(module: Callable, frozen: Callable, x: torch.Tensor) -> str:
    """Why ``frozen`` does not answer as ``module`` on ``x``; empty when it does."""
    expected, actual = module(x), frozen(x)
    if expected.shape != actual.shape:
        return f"returns shape {tuple(actual.shape)}, the model {tuple(expected.shape)}"
    if not torch.allclose(expected, actual, rtol=TOLERANCE, atol=TOLERANCE):
        diff = (expected - actual).abs().max().item()
        return f"differs from the model by up to {diff:.3g} at batch {len(x)}"
    return ""


class LoneGraph:
    """Which graph runs a lone image inline: the one measured faster in this server, right now.

    Measured in service because the answer differs by machine: with each request's own work
    evicting the weights from the caches between forwards, the eager model ran a lone
    mnist_cnn image faster than the frozen graph on one 2-core VM (2.40 against 2.98 ms per
    request) and slower on another (1.34 against 1.20 ms), while a warm loop favours the frozen
    graph on both. So lone requests take turns in blocks (``schedule``), each candidate in its
    own steady state, and the lower median serves until the next trial, ``every_s`` later.
    """

    def __init__(
        self,
        runs: dict[str, Callable[[torch.Tensor], torch.Tensor]],
        block: int = 50,
        rounds: int = 2,
        every_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.runs, self.block, self.every_s, self.clock = runs, block, every_s, clock
        self.labels = labels or {}  # the fields of the log line each trial ends with
        self.names = list(runs)
        self.current = self.names[0]  # the first serves until a trial has chosen
        self.schedule = self.names * rounds
        self.trials = 0
        self.medians: dict[str, float] = {}  # seconds per forward, in the last trial
        self._next_trial = 0.0
        self._start_trial()

    def _start_trial(self) -> None:
        self._step: int | None = 0
        self._seen: dict[str, list[float]] = {name: [] for name in self.names}

    def pick(self) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
        """The candidate that runs this lone image (the chosen one, or a trial's turn)."""
        if self._step is None:
            if self.clock() < self._next_trial:
                return self.current, self.runs[self.current]
            self._start_trial()
        name = self.schedule[self._step // self.block]
        return name, self.runs[name]

    def observe(self, name: str, seconds: float) -> None:
        """Count one forward of ``name`` towards the trial in progress; choose when it ends."""
        if self._step is None:
            return
        self._seen[name].append(seconds)
        self._step += 1
        if self._step >= self.block * len(self.schedule):
            self.medians = {n: statistics.median(times) for n, times in self._seen.items()}
            self.current = min(self.medians, key=self.medians.__getitem__)
            self.trials += 1
            self._step, self._next_trial = None, self.clock() + self.every_s
            log.info(
                "lone_graph_chosen",
                **self.labels,
                graph=self.current,
                median_ms={n: round(t * 1000, 3) for n, t in self.medians.items()},
            )

    def run(self, forward: Callable[[Callable], T]) -> T:
        """``forward(candidate)`` on the candidate picked now, its time counted."""
        name, candidate = self.pick()
        started = time.perf_counter()
        result = forward(candidate)
        self.observe(name, time.perf_counter() - started)
        return result
