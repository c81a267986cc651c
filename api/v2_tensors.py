"""v2 input tensors: name, datatype, shape and byte count checked, then decoded into images.

Data comes either as JSON (``data``) or as binary after the JSON header (the binary tensor data
extension: ``parameters.binary_data_size`` bytes, little-endian, row-major; a BYTES element is a
4-byte little-endian length and then its bytes).
"""

from __future__ import annotations

import math

import numpy as np

from api.inference import decode_image_b64
from domain.errors import InvalidInput
from ml.preprocess import InputError, decode_png_image

DTYPES = {"FP32": np.float32, "UINT8": np.uint8}
ITEM_BYTES = {"FP32": 4, "UINT8": 1}
MAX_IMAGES = 4096
# The model metadata's inputs, one name per form. The datatype decides how an input is read;
# a name bound to one form refuses the others, while "input" (the name all three forms shared
# before names were unique) and names not listed here accept any of them.
INPUT_NAMES = {"input": "FP32", "input_uint8": "UINT8", "input_png": "BYTES"}
BOUND_NAMES = {"input_uint8": "UINT8", "input_png": "BYTES"}
PNG_MAGIC = b"\x89PNG"


def binary_size(inp) -> int | None:
    """The input's ``binary_data_size`` (None: its data is in the JSON), checked."""
    params = inp.parameters or {}
    if "shared_memory_region" in params:
        raise InvalidInput(f"input {inp.name!r}: shared memory is not supported; send the data")
    size = params.get("binary_data_size")
    if size is None:
        if inp.data is None:
            raise InvalidInput(
                f"input {inp.name!r} has no data: give data or parameters.binary_data_size"
            )
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(
            f"input {inp.name!r}: binary_data_size must be a non-negative integer, got {size!r}"
        )
    if inp.data is not None:
        raise InvalidInput(f"input {inp.name!r} has both data and binary_data_size; send one")
    return size


def check_input(inp, size: int | None) -> None:
    """Name, datatype, shape and (binary) byte count of one input, before any input is decoded."""
    shape = inp.shape
    if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape):
        raise InvalidInput(f"input {inp.name!r}: shape must be non-negative integers, got {shape}")
    bound = BOUND_NAMES.get(inp.name)
    if bound is not None and inp.datatype != bound:
        raise InvalidInput(
            f"input {inp.name!r} is {bound}, got {inp.datatype!r}; the inputs are "
            + ", ".join(f"{n!r} {d}" for n, d in INPUT_NAMES.items())
        )
    if inp.datatype == "BYTES":
        if len(shape) != 1:
            raise InvalidInput(f"input {inp.name!r}: BYTES inputs have shape [N], got {shape}")
        if size is None and len(inp.data) != shape[0]:
            raise InvalidInput(
                f"input {inp.name!r}: shape {shape} says {shape[0]} images, data has {len(inp.data)}"
            )
    elif inp.datatype not in DTYPES:
        raise InvalidInput(
            f"input {inp.name!r}: datatype {inp.datatype!r} is not supported; use FP32, UINT8 or BYTES"
        )
    elif len(shape) not in (2, 3, 4) or tuple(shape[1:]) not in ((784,), (28, 28), (1, 28, 28)):
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} is not supported; use [N,1,28,28], [N,28,28] or [N,784]"
        )
    elif size is not None and size != math.prod(shape) * ITEM_BYTES[inp.datatype]:
        need = math.prod(shape) * ITEM_BYTES[inp.datatype]
        raise InvalidInput(
            f"input {inp.name!r}: {inp.datatype} shape {shape} is {need:,} bytes, "
            f"binary_data_size is {size:,}"
        )
    if shape[0] > MAX_IMAGES:
        raise InvalidInput(f"input {inp.name!r}: at most {MAX_IMAGES} images per request")


def declared_images(inp) -> int:
    """Images an input claims to hold (its first dimension), checked before any decoding."""
    first = inp.shape[0] if inp.shape else 0
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise InvalidInput(
            f"input {inp.name!r}: shape must be non-negative integers, got {inp.shape}"
        )
    return first


def images_of(inp, raw: memoryview | None) -> np.ndarray:
    """Decode one checked input (JSON data, or its binary bytes) into images [N,28,28]."""
    if inp.datatype == "BYTES":
        items = inp.data if raw is None else _elements(inp, raw)
        out = np.empty((inp.shape[0], 28, 28), dtype=np.uint8)
        for i, item in enumerate(items):
            out[i] = _png(inp.name, i, item)
        return out
    if raw is None:
        return _json_pixels(inp)
    n = inp.shape[0]
    if inp.datatype == "UINT8":
        return np.frombuffer(raw, dtype=np.uint8).reshape(n, 28, 28).copy()
    arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return _checked_unit(inp, arr).reshape(n, 28, 28)


def _png(name: str, i: int, item: object) -> np.ndarray:
    """One BYTES element: base64 PNG text (JSON or binary) or raw PNG bytes (binary only)."""
    field = f"input {name!r}[{i}]"
    if isinstance(item, memoryview) and bytes(item[:4]) == PNG_MAGIC:
        try:
            return decode_png_image(bytes(item))
        except InputError as exc:
            raise InvalidInput(f"{field}: {exc}") from None
    if isinstance(item, memoryview):
        try:
            item = bytes(item).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidInput(f"{field}: neither PNG bytes nor base64 PNG text") from None
    if not isinstance(item, str):
        raise InvalidInput(f"{field}: BYTES data must be base64 PNG strings")
    return decode_image_b64(item, field)


def _elements(inp, raw: memoryview) -> list[memoryview]:
    """Split binary BYTES data: each element a 4-byte little-endian length, then its bytes."""
    items: list[memoryview] = []
    pos, end, want = 0, len(raw), inp.shape[0]
    while pos < end and len(items) <= want:
        if pos + 4 > end:
            raise InvalidInput(
                f"input {inp.name!r}: binary BYTES element {len(items)} lacks its 4-byte length"
            )
        length = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if length > end - pos:
            raise InvalidInput(
                f"input {inp.name!r}: binary BYTES element {len(items)} says {length:,} bytes, "
                f"{end - pos:,} remain"
            )
        items.append(raw[pos : pos + length])
        pos += length
    if len(items) != want or pos != end:
        raise InvalidInput(
            f"input {inp.name!r}: shape {inp.shape} says {want} images, "
            f"the binary data holds {len(items)}{' or more' if pos != end else ''}"
        )
    return items


def _json_pixels(inp) -> np.ndarray:
    """FP32 or UINT8 numbers from JSON lists, checked against the shape and the range."""
    shape = inp.shape
    uint8 = inp.datatype == "UINT8"
    expected = math.prod(shape)
    try:
        # float64 for FP32 too: a number beyond float32's range (1e39) is then refused as out of
        # [0, 1], as it is, instead of turning into infinity (and a RuntimeWarning) on the way.
        arr = np.asarray(inp.data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(
            f"input {inp.name!r}: data must be numbers in nested or flat lists of equal length"
        ) from None
    if arr.size != expected:
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} needs {expected} values, data has {arr.size}"
        )
    if not uint8:
        return _checked_unit(inp, arr).astype(np.float32).reshape(shape[0], 28, 28)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"input {inp.name!r}: data contains NaN or infinity")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 255 or (arr != np.round(arr)).any():
        raise InvalidInput(f"input {inp.name!r}: UINT8 data must be integers in 0..255")
    return arr.astype(np.uint8).reshape(shape[0], 28, 28)


def _checked_unit(inp, arr: np.ndarray) -> np.ndarray:
    """FP32 pixels: finite and in [0, 1], the range the training data was scaled to."""
    if not np.isfinite(arr).all():
        raise InvalidInput(f"input {inp.name!r}: data contains NaN or infinity")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
        raise InvalidInput(f"input {inp.name!r}: FP32 data must be in [0, 1]")
    return arr
