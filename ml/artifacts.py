"""Model artifacts: ``model.pt`` (a plain state_dict) beside ``metadata.json``.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` only rebuilds
tensors and plain containers, so a pickle that would run code is refused, not executed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from events.registry import ArtifactMetadata
from ml.artifact_files import (
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    atomic_write,
    read_metadata,
    read_regular,
    sha256_file,
    write_metadata,
)
from ml.zoo import UnknownArchitecture, build_model

# The layout itself lives in ml.artifact_files (shared with the artifact store); these names
# are re-exported for the callers that load and save models.
__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "ArtifactError",
    "load_model",
    "load_state_dict",
    "read_metadata",
    "read_regular",
    "save_artifact",
    "sha256_file",
]


def save_artifact(model: nn.Module, metadata: ArtifactMetadata, directory: Path) -> Path:
    """Write ``model.pt`` (state_dict) and ``metadata.json`` into ``directory``; return model.pt."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Contiguous CPU copies, so the file loads anywhere and is independent of memory format.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    model_path = directory / MODEL_FILE
    atomic_write(model_path, lambda fh: torch.save(state, fh))
    write_metadata(directory, metadata)
    return model_path


def load_state_dict(path: Path, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """Load a plain state_dict safely (weights_only) or raise ArtifactError saying why not.

    With ``data`` (the file's bytes, already read and hashed) the file is not opened again.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    try:
        source = io.BytesIO(data) if data is not None else path
        obj = torch.load(source, weights_only=True, map_location="cpu")
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


def load_model(
    path: Path, metadata: ArtifactMetadata | None = None, data: bytes | None = None
) -> nn.Module:
    """Build ``metadata.architecture`` (sidecar metadata when None), load weights, eval mode."""
    metadata = metadata if metadata is not None else read_metadata(Path(path))
    if metadata is None or not metadata.architecture:
        raise ArtifactError(f"{path}: metadata names no architecture; cannot build the model")
    try:
        model = build_model(metadata.architecture, metadata.num_classes or 10)
    except UnknownArchitecture as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    state = load_state_dict(path, data)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"{path}: weights do not fit architecture {metadata.architecture!r}: "
            f"{str(exc).splitlines()[0][:300]}"
        ) from exc
    return model.eval()
