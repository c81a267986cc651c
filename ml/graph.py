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

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ml.preprocess import EXPECTED_SIZE

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
            frozen = torch.jit.optimize_for_inference(torch.jit.trace(module.eval(), samples[0]))
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
