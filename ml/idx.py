"""A small reader and writer for the IDX format of the MNIST files (plain or gzip)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

# IDX type code -> big-endian numpy dtype, per the MNIST page's format description.
_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES = {np.dtype(v).newbyteorder(">").str.lstrip("|"): k for k, v in _DTYPES.items()}


class IdxError(ValueError):
    """The file is not a well-formed IDX file."""


def _open(path: Path) -> BinaryIO:
    # gzip is detected by its magic bytes, not the file name.
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _header(fh: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = fh.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
        raise IdxError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
    ndim = head[3]
    raw = fh.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise IdxError(f"{path}: truncated IDX header")
    return np.dtype(_DTYPES[head[2]]), struct.unpack(f">{ndim}I", raw)


def read_idx_header(path: str | os.PathLike[str]) -> tuple[np.dtype, tuple[int, ...]]:
    """Return the element dtype and shape stored in an IDX file, reading only its header."""
    path = Path(path)
    with _open(path) as fh:
        return _header(fh, path)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole IDX file (optionally gzip-compressed) into a native-endian array."""
    path = Path(path)
    with _open(path) as fh:
        dtype, shape = _header(fh, path)
        count = int(np.prod(shape, dtype=np.int64))
        data = fh.read(count * dtype.itemsize + 1)
    if len(data) != count * dtype.itemsize:
        raise IdxError(
            f"{path}: header promises {count} values of shape {shape}, "
            f"file holds {len(data) // dtype.itemsize}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when the name ends in .gz."""
    path = Path(path)
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">")
    code = _CODES.get(big.str.lstrip("|"))
    if code is None:
        raise IdxError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=big).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)
