"""The artifact layout on disk, in one place: a folder with ``model.pt`` beside ``metadata.json``.

Both sides use it: ``ml/`` writes artifacts after training and reads them to serve, and the
artifact store in ``storage/`` copies them in at registration. No torch here, so the store (and
the CLI that lists the registry) can import it without loading PyTorch.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec

from events.registry import ArtifactMetadata

MODEL_FILE = "model.pt"
METADATA_FILE = "metadata.json"
MAX_METADATA_BYTES = 1 << 20


class ArtifactError(ValueError):
    """The artifact is missing, not a plain state_dict, or does not fit its architecture."""


def atomic_write(
    path: Path,
    write: Callable[[BinaryIO], object],
    check: Callable[[Path], None] | None = None,
) -> None:
    """Write ``path`` through ``write(fh)`` into a temp file beside it, fsync, ``check``, rename."""
    # Readers see the old file or the new one, never half; if ``write`` or ``check`` raises,
    # the temp file goes and ``path`` is unchanged.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size in bytes of a file, from one streamed read."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_regular(path: Path, max_bytes: int | None = None) -> bytes:
    """A regular file's bytes from one open that follows no symlink (O_NOFOLLOW).

    Whoever hashes, inspects or loads an artifact works on these bytes, so the file cannot be
    swapped between the check and the use. A FIFO or device is refused without blocking.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"{path}: is a symbolic link; refusing to follow it") from None
        raise ArtifactError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ArtifactError(f"{path}: {len(data)}+ bytes; the limit is {max_bytes}")
    return data


def encode_metadata(metadata: ArtifactMetadata) -> bytes:
    """Metadata as pretty JSON bytes (the metadata.json format)."""
    return msgspec.json.format(msgspec.json.encode(metadata), indent=2) + b"\n"


def write_metadata(directory: Path, metadata: ArtifactMetadata) -> Path:
    """Write ``metadata.json`` into ``directory`` atomically; return its path."""
    path = Path(directory) / METADATA_FILE
    atomic_write(path, lambda fh: fh.write(encode_metadata(metadata)))
    return path


def read_metadata(model_path: Path) -> ArtifactMetadata | None:
    """Read the ``metadata.json`` beside ``model_path``; None when there is none."""
    sidecar = Path(model_path).with_name(METADATA_FILE)
    if not sidecar.exists() and not sidecar.is_symlink():
        return None
    # A FIFO or device would block the reader forever; a directory is a mistake.
    if not sidecar.is_file():
        raise ArtifactError(f"{sidecar}: metadata must be a regular file")
    if sidecar.stat().st_size > MAX_METADATA_BYTES:
        raise ArtifactError(f"{sidecar}: metadata is over 1 MiB")
    try:
        raw = sidecar.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{sidecar}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return msgspec.json.decode(raw, type=ArtifactMetadata)
    except msgspec.ValidationError as exc:
        raise ArtifactError(f"{sidecar}: invalid metadata: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ArtifactError(f"{sidecar}: not JSON: {exc}") from exc
