"""Turning raw inputs (uint8 arrays, PNG bytes) into normalised model input.

PNG modes: L is taken as is; 1 and P (without transparency) and RGB are converted to L with
PIL's ITU-R 601-2 luma; RGBA, LA and transparent P images are composited onto black first,
because MNIST-style digits are bright strokes on a black (0) background. Other modes (16-bit,
CMYK, ...) are refused. Images must already be 28×28: nothing is resized, since resizing
changes what the model sees and should be the caller's explicit choice.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

EXPECTED_SIZE = (28, 28)
MAX_PNG_BYTES = 1 << 20  # a 28×28 PNG is a few hundred bytes; anything bigger is suspect
ACCEPTED_MODES = ("L", "1", "P", "RGB", "RGBA", "LA")


class InputError(ValueError):
    """The input cannot be turned into a 1×28×28 image."""


def normalization_of(metadata: Any) -> tuple[float, float]:
    """(mean, std) from an ArtifactMetadata or a mapping; (0, 1) when none is recorded."""
    norm = metadata if isinstance(metadata, Mapping) else getattr(metadata, "normalization", {})
    mean = float(norm.get("mean", 0.0)) if norm else 0.0
    std = float(norm.get("std", 1.0)) if norm else 1.0
    if not std > 0:
        raise ValueError(f"normalization std must be positive, got {std}")
    return mean, std


def to_model_input(images: torch.Tensor | np.ndarray, normalization: Any = None) -> torch.Tensor:
    """uint8 [N,28,28] or [N,1,28,28] (or float in [0,1]) → float32 [N,1,28,28], normalised."""
    x = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != EXPECTED_SIZE:
        raise InputError(f"expected images of shape [N,28,28] or [N,1,28,28], got {list(x.shape)}")
    mean, std = normalization_of(normalization or {})
    scale = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
    # One fused multiply-add: (x*scale - mean)/std == x*(scale/std) - mean/std.
    # Out-of-place multiply first: a float32 input must not be modified in place.
    return x.to(torch.float32).mul(scale / std).sub_(mean / std)


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
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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
            gray = _to_luma(img)
        except Exception as exc:
            raise InputError(f"corrupt PNG image ({type(exc).__name__}: {exc})") from exc
    return np.array(gray, dtype=np.uint8)
