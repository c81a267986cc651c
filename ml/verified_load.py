"""Reading a registered version's weights for serving: the bytes hashed are the bytes loaded,
and a file that fails its sha256 or lacks what serving needs is refused with the reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import torch

from domain.errors import Conflict
from events.registry import ArtifactMetadata
from ml.loaded_model import VersionRef
from ml.preprocess import Normalizer


def load_verified(
    ref: VersionRef, resolve_path: Callable[[str], Path]
) -> tuple[torch.nn.Module, ArtifactMetadata]:
    """The version's module in eval mode and its metadata, or Conflict saying why not."""
    from ml.artifacts import ArtifactError, load_model, read_regular

    path = resolve_path(ref.artifact_uri)
    try:  # one open, no symlink followed: the bytes hashed are the bytes loaded
        data = read_regular(path)
    except ArtifactError as exc:
        raise Conflict(f"cannot load {ref.model_name} {ref.model_version}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != ref.sha256:
        # Conflict, not ServiceUnavailable: retrying cannot fix a file that changed on disk.
        raise Conflict(
            f"artifact of {ref.model_name} {ref.model_version} fails its sha256 check "
            f"(registered {ref.sha256[:12]}, on disk {actual[:12]}); refusing to serve it"
        )
    meta = msgspec.convert(ref.metadata or {}, ArtifactMetadata)
    if not meta.architecture:
        raise Conflict(
            f"{ref.model_name} {ref.model_version} has no architecture in its metadata, "
            "so it cannot be served; register it with a metadata.json beside model.pt"
        )
    try:
        Normalizer.of(meta)  # refuse a normalisation that training would never write
        module = load_model(path, meta, data)
    except (ArtifactError, ValueError) as exc:
        raise Conflict(f"cannot load {ref.model_name} {ref.model_version}: {exc}") from exc
    module.eval()
    return module, meta
