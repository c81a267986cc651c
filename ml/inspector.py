"""Adapter for domain.ports.ArtifactInspector: is this file a loadable torch state dict?"""

from __future__ import annotations

from pathlib import Path

from domain.errors import InvalidInput
from events.registry import ArtifactMetadata


class TorchArtifactInspector:
    """Loads with weights_only=True and reads the sidecar metadata.json."""

    def inspect(self, path: Path) -> ArtifactMetadata | None:
        """Refuse files that are not a torch state dict; return sidecar metadata if present."""
        from ml.artifacts import ArtifactError, load_state_dict, read_metadata

        try:
            load_state_dict(path)
        except ArtifactError as exc:
            raise InvalidInput(str(exc)) from None
        try:
            return read_metadata(path)
        except ArtifactError as exc:
            raise InvalidInput(str(exc)) from None
