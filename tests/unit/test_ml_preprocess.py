"""Model input conversion and PNG decoding."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from events.registry import ArtifactMetadata
from ml.preprocess import InputError, decode_png_image, normalization_of, to_model_input


def _png(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def test_to_model_input_normalises_uint8():
    images = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    meta = ArtifactMetadata(normalization={"mean": 0.5, "std": 0.25})
    x = to_model_input(images, meta)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 2.0))
    assert torch.equal(to_model_input(images.numpy()[:, None], meta), x)


def test_to_model_input_without_normalization_scales_to_unit_range():
    x = to_model_input(torch.full((1, 1, 28, 28), 51, dtype=torch.uint8))
    assert torch.allclose(x, torch.full_like(x, 0.2))


def test_to_model_input_leaves_float_input_untouched():
    images = torch.full((1, 1, 28, 28), 0.5)
    x = to_model_input(images, {"mean": 0.25, "std": 0.5})
    assert torch.allclose(x, torch.full_like(x, 0.5)) and float(images[0, 0, 0, 0]) == 0.5


def test_to_model_input_rejects_wrong_shapes():
    with pytest.raises(InputError, match=r"\[N,28,28\]"):
        to_model_input(torch.zeros(2, 32, 32, dtype=torch.uint8))


def test_normalization_of_rejects_zero_std():
    with pytest.raises(ValueError, match="std"):
        normalization_of({"mean": 0.1, "std": 0.0})


def test_decode_grayscale_png():
    pixels = np.arange(784, dtype=np.uint8).reshape(28, 28)
    out = decode_png_image(_png(Image.fromarray(pixels, mode="L")))
    assert out.dtype == np.uint8 and np.array_equal(out, pixels)


@pytest.mark.parametrize("mode", ["1", "P", "RGB", "LA"])
def test_decode_converts_other_modes_to_grayscale(mode):
    img = Image.new("L", (28, 28), 0)
    img.putpixel((3, 4), 255)
    out = decode_png_image(_png(img.convert(mode)))
    assert out.shape == (28, 28) and out[4, 3] == 255 and out[0, 0] == 0


def test_transparent_pixels_become_black():
    img = Image.new("RGBA", (28, 28), (255, 255, 255, 0))  # white but fully transparent
    img.putpixel((5, 5), (255, 255, 255, 255))
    out = decode_png_image(_png(img))
    assert out[0, 0] == 0 and out[5, 5] == 255


def test_wrong_size_is_refused_not_resized():
    with pytest.raises(InputError, match="expected a 28x28 image, got 32x30"):
        decode_png_image(_png(Image.new("L", (32, 30))))


def test_not_a_png():
    with pytest.raises(InputError, match="not a PNG image"):
        decode_png_image(b"hello, not an image")
    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, format="JPEG")
    with pytest.raises(InputError, match="not a PNG image"):
        decode_png_image(buf.getvalue())
    with pytest.raises(InputError, match="expected PNG bytes"):
        decode_png_image("a string")


def test_unsupported_mode():
    with pytest.raises(InputError, match="unsupported PNG mode 'I;16'"):
        decode_png_image(_png(Image.new("I;16", (28, 28))))


def test_truncated_png_is_reported_corrupt():
    data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)))
    with pytest.raises(InputError, match="corrupt PNG"):
        decode_png_image(data[: len(data) // 2])


def _claiming_size(width: int, height: int) -> bytes:
    # A real 28x28 PNG whose IHDR chunk is rewritten (with a valid CRC) to claim another size.
    data = bytearray(_png(Image.new("L", (28, 28))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(InputError, match="expected a 28x28 image, got 3000x3000"):
        decode_png_image(_claiming_size(3000, 3000))
    with pytest.raises(InputError, match="expected a 28x28 image; this one declares far more"):
        decode_png_image(_claiming_size(50_000, 50_000))
    with pytest.raises(InputError, match="too large"):
        decode_png_image(b"\x89PNG" + b"\x00" * (2 << 20))
