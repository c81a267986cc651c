"""Model artifacts: ``model.pt`` (a plain state_dict) beside ``metadata.json``.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` only rebuilds
tensors and plain containers, so a pickle that would run code is refused, not executed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import msgspec
import torch
from torch import nn

from events.registry import ArtifactMetadata
from ml.zoo import UnknownArchitecture, build_model

MODEL_FILE = "model.pt"
METADATA_FILE = "metadata.json"


class ArtifactError(ValueError):
    """The artifact is missing, not a plain state_dict, or does not fit its architecture."""


def _atomic_write(path: Path, write) -> None:
    # Write beside the target and rename: readers see the old file or the new one, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(model: nn.Module, metadata: ArtifactMetadata, directory: Path) -> Path:
    """Write ``model.pt`` (state_dict) and ``metadata.json`` into ``directory``; return model.pt."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Contiguous CPU copies, so the file loads anywhere and is independent of memory format.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    model_path = directory / MODEL_FILE
    _atomic_write(model_path, lambda fh: torch.save(state, fh))
    _atomic_write(directory / METADATA_FILE, lambda fh: fh.write(encode_metadata(metadata)))
    return model_path


def encode_metadata(metadata: ArtifactMetadata) -> bytes:
    """Metadata as pretty JSON bytes (the metadata.json format)."""
    return msgspec.json.format(msgspec.json.encode(metadata), indent=2) + b"\n"


def read_metadata(model_path: Path) -> ArtifactMetadata | None:
    """Read the ``metadata.json`` beside ``model_path``; None when there is none."""
    sidecar = Path(model_path).with_name(METADATA_FILE)
    if not sidecar.exists() and not sidecar.is_symlink():
        return None
    # A FIFO or device would block the reader forever; a directory is a mistake.
    if not sidecar.is_file():
        raise ArtifactError(f"{sidecar}: metadata must be a regular file")
    if sidecar.stat().st_size > 1 << 20:
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


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a plain state_dict safely (weights_only) or raise ArtifactError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # unpickling, zip and EOF errors all mean "not a state_dict"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"{path}: not a loadable PyTorch state_dict (it must be saved with "
            f"torch.save(model.state_dict(), ...); pickled objects or whole modules are "
            f"refused): {first[:300]}"
        ) from exc
    if not isinstance(obj, Mapping):
        raise ArtifactError(
            f"{path}: expected a state_dict (a mapping of names to tensors), "
            f"got {type(obj).__name__}"
        )
    if not obj:
        raise ArtifactError(f"{path}: the state_dict is empty")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ArtifactError(
            f"{path}: a state_dict maps names to tensors; {len(bad)} entries do not "
            f"(e.g. {bad[0]!r})"
        )
    return dict(obj)


def load_model(path: Path, metadata: ArtifactMetadata | None = None) -> nn.Module:
    """Build ``metadata.architecture`` (sidecar metadata when None), load weights, eval mode."""
    metadata = metadata if metadata is not None else read_metadata(Path(path))
    if metadata is None or not metadata.architecture:
        raise ArtifactError(f"{path}: metadata names no architecture; cannot build the model")
    try:
        model = build_model(metadata.architecture, metadata.num_classes or 10)
    except UnknownArchitecture as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"{path}: weights do not fit architecture {metadata.architecture!r}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from exc
    return model.eval()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
