"""Turning raw inputs (uint8 arrays, PNG bytes) into normalised model input: the one copy.

Training (``ml/training.py``), serving and batch evaluation (``ml/serving.py``) all normalise
through ``Normalizer``, and training's mean/std come from ``fit_normalization``, so what a model
was trained on is what it is served: uint8 pixels are scaled by 1/255, float input is taken as
already in [0, 1], then ``(x - mean) / std``. A std below ``MIN_STD`` is never divided by:
hand-written metadata with one is refused at registration; a constant dataset is fitted with
std 1.

PNG modes: L is taken as is; 1 and P (without transparency) and RGB are converted to L with
PIL's ITU-R 601-2 luma; RGBA, LA and transparent P images are composited onto black first,
because MNIST-style digits are bright strokes on a black (0) background. Other modes (16-bit,
CMYK, ...) are refused. Images must already be 28×28: nothing is resized, since resizing
changes what the model sees and should be the caller's explicit choice.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

EXPECTED_SIZE = (28, 28)
MAX_PNG_BYTES = 1 << 20  # a 28×28 PNG is a few hundred bytes; anything bigger is suspect
ACCEPTED_MODES = ("L", "1", "P", "RGB", "RGBA", "LA")
# A PNG declaring a decompression bomb's pixel count is an error in this process, not a warning:
# set once here (a catch_warnings per image cost ~10 µs and reset every module's warning cache).
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
UINT8_SCALE = 1.0 / 255.0  # uint8 pixel → [0, 1]
MIN_STD = 1e-6


class InputError(ValueError):
    """The input cannot be turned into a 1×28×28 image."""


def normalization_of(metadata: Any) -> tuple[float, float]:
    """(mean, std) from an ArtifactMetadata or a mapping; (0, 1) when none is recorded."""
    norm = metadata if isinstance(metadata, Mapping) else getattr(metadata, "normalization", {})
    norm = norm or {}
    unknown = sorted(set(norm) - {"mean", "std"})
    if unknown:
        raise ValueError(f"normalization.{unknown[0]} is unknown; only mean and std are used")
    mean, std = float(norm.get("mean", 0.0)), float(norm.get("std", 1.0))
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError("normalization.mean and normalization.std must be finite numbers")
    if not std >= MIN_STD:
        raise ValueError(f"normalization.std must be at least {MIN_STD:g}, got {std}")
    return mean, std


def fit_normalization(images: torch.Tensor) -> dict[str, float]:
    """Mean and std of uint8 images scaled to [0,1], in float64, rounded to 4 places."""
    total, squares, count = 0.0, 0.0, images.numel()
    for chunk in images.split(8192):
        values = chunk.to(torch.float64) * UINT8_SCALE
        total += float(values.sum())
        squares += float((values * values).sum())
    mean = total / count
    std = max(squares / count - mean * mean, 0.0) ** 0.5
    std = round(std, 4)
    # A (nearly) constant dataset has nothing to scale: std 1, not a division by ~0.
    return {"mean": round(mean, 4), "std": std if std >= MIN_STD else 1.0}


class Normalizer:
    """Images → float32 [N,1,28,28] model input for one version's normalisation."""

    __slots__ = ("_float_scale", "_shift", "_uint8_scale", "mean", "std")

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        self.mean, self.std = normalization_of({"mean": mean, "std": std})
        # One multiply-add: (x*scale - mean)/std == x*(scale/std) - mean/std.
        self._uint8_scale = UINT8_SCALE / self.std
        self._float_scale = 1.0 / self.std
        self._shift = self.mean / self.std

    @classmethod
    def of(cls, metadata: Any) -> Normalizer:
        """The normaliser recorded in an ArtifactMetadata or a normalisation mapping."""
        return cls(*normalization_of(metadata))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 0..255 or float [0,1] images [N,28,28] / [N,1,28,28], on any device."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != EXPECTED_SIZE:
            raise InputError(
                f"expected images of shape [N,28,28] or [N,1,28,28], got {list(x.shape)}"
            )
        if x.dtype == torch.uint8:
            out = x.to(torch.float32).mul_(self._uint8_scale)
        else:
            # Out of place: the caller's float32 tensor must not be modified.
            out = x.to(torch.float32).mul(self._float_scale)
        return out.sub_(self._shift)


def to_model_input(images: torch.Tensor | np.ndarray, normalization: Any = None) -> torch.Tensor:
    """uint8 [N,28,28] or [N,1,28,28] (or float in [0,1]) → float32 [N,1,28,28], normalised."""
    x = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    return Normalizer.of(normalization or {})(x)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 → float32 in [0,1] (what a float request means); float passes through."""
    if images.dtype != np.uint8:
        return images
    return images.astype(np.float32) * np.float32(UINT8_SCALE)


def _to_luma(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"), dtype=np.uint16)
        luma = np.asarray(img.convert("L"), dtype=np.uint16)
        # Transparent pixels become background (black), not whatever colour hides under them.
        return Image.fromarray(((luma * alpha + 127) // 255).astype(np.uint8), mode="L")
    return img.convert("L")


def decode_png_image(data: bytes) -> np.ndarray:
    """Decode PNG bytes into a uint8 [28,28] grayscale array, or raise InputError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError(f"expected PNG bytes, got {type(data).__name__}")
    if len(data) > MAX_PNG_BYTES:
        raise InputError(f"PNG of {len(data):,} bytes is too large (limit {MAX_PNG_BYTES:,})")
    try:
        img = Image.open(io.BytesIO(data), formats=["PNG"])  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            f"expected a 28x28 image; this one declares far more pixels ({exc})"
        ) from exc
    except Exception as exc:  # PIL raises several types for undecodable input
        raise InputError(f"not a PNG image ({type(exc).__name__})") from exc
    with img:
        # Check the declared size before decoding any pixels: guards against PNG bombs.
        if img.size != EXPECTED_SIZE:
            w, h = img.size
            raise InputError(f"expected a 28x28 image, got {w}x{h} (images are not resized)")
        if img.mode not in ACCEPTED_MODES:
            raise InputError(
                f"unsupported PNG mode {img.mode!r}; accepted: {', '.join(ACCEPTED_MODES)}"
            )
        try:
            img.load()
            if img.mode == "L":
                # The usual case needs no conversion; tobytes is cheaper than np.array(img).
                h, w = img.size[1], img.size[0]
                return np.frombuffer(bytearray(img.tobytes()), dtype=np.uint8).reshape(h, w)
            gray = _to_luma(img)
        except Exception as exc:
            raise InputError(f"corrupt PNG image ({type(exc).__name__}: {exc})") from exc
    return np.array(gray, dtype=np.uint8)
