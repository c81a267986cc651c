"""Where models run: ``DEVICE=auto|cpu|cuda[:N]`` resolved to a torch device, and host→device copies."""

from __future__ import annotations

import re

import numpy as np
import torch

_SPEC = re.compile(r"^(auto|cpu|cuda(?::(\d+))?)$")


class DeviceError(ValueError):
    """The DEVICE setting names a device that does not exist here."""


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU if there is one, else the CPU; ``cpu``; ``cuda[:N]``, checked."""
    if isinstance(spec, torch.device):
        return spec
    raw = (spec or "auto").strip().lower()
    match = _SPEC.match(raw)
    if match is None:
        raise DeviceError(f"DEVICE must be auto, cpu, cuda or cuda:N, not {spec!r}")
    if raw == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if raw == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"DEVICE={raw} but no CUDA GPU is available here; use cpu or auto")
    index = int(match.group(2) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"DEVICE={raw} but this machine has {count} CUDA GPU(s) (0..{count - 1})")
    return torch.device("cuda", index)


def describe(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``, for logs and benchmark reports."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


class HostStaging:
    """Assembles uint8 batches in one reusable pinned buffer and copies them to the device.

    On CUDA, a pinned (page-locked) source lets the copy run asynchronously
    (``non_blocking=True``) instead of through a hidden staging copy. The buffer is reused:
    callers run one batch at a time and read the result back (a synchronising copy) before
    the next one, so the previous copy has finished when the buffer is overwritten.
    On the CPU it is a zero-copy ``torch.from_numpy``.
    """

    def __init__(self, device: torch.device, shape: tuple[int, ...] = (28, 28)) -> None:
        self.device = device
        self.shape = shape
        self._pinned: torch.Tensor | None = None

    @property
    def cuda(self) -> bool:
        """True when batches are copied to a GPU."""
        return self.device.type == "cuda"

    def _buffer(self, rows: int, dtype: torch.dtype) -> torch.Tensor:
        buf = self._pinned
        if buf is None or buf.shape[0] < rows or buf.dtype != dtype:
            size = max(rows, buf.shape[0] if buf is not None else 0)
            buf = self._pinned = torch.empty((size, *self.shape), dtype=dtype).pin_memory()
        return buf[:rows]

    def to_device(self, parts: list[np.ndarray] | np.ndarray) -> torch.Tensor:
        """One array or a list of same-dtype arrays → one tensor on the device (rows joined)."""
        if isinstance(parts, np.ndarray):
            parts = [parts]
        if not self.cuda:
            return torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
        rows = sum(len(p) for p in parts)
        buf = self._buffer(rows, torch.from_numpy(parts[0][:0]).dtype)
        host = buf.numpy()
        offset = 0
        for part in parts:
            host[offset : offset + len(part)] = part.reshape(len(part), *self.shape)
            offset += len(part)
        return buf.to(self.device, non_blocking=True)


def warm_up_sizes(max_batch: int, cuda: bool) -> list[int]:
    """Batch sizes run once at load: all up to ``max_batch`` on a GPU, powers of two on a CPU."""
    if cuda:
        return list(range(1, max_batch + 1))
    sizes, n = [], 1
    while n < max_batch:
        sizes.append(n)
        n *= 2
    return [*sizes, max(1, max_batch)]
