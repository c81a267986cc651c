"""Adapter for domain.ports.ArtifactInspector: is this file a servable torch state dict?"""

from __future__ import annotations

from pathlib import Path

from domain.errors import InvalidInput
from events.registry import ArtifactMetadata

INPUT_DTYPES = ("float32", "uint8")


def check_metadata(meta: ArtifactMetadata) -> None:
    """Refuse metadata the platform could not serve correctly."""
    from ml.preprocess import normalization_of
    from ml.zoo import list_architectures

    if meta.architecture is not None and meta.architecture not in list_architectures():
        known = ", ".join(list_architectures())
        raise InvalidInput(
            f"metadata.architecture {meta.architecture!r} is unknown; known: {known}"
        )
    if meta.num_classes is not None and not 1 <= meta.num_classes <= 100_000:
        raise InvalidInput(f"metadata.num_classes must be 1..100000, got {meta.num_classes}")
    if meta.class_names and meta.num_classes and len(meta.class_names) != meta.num_classes:
        raise InvalidInput("metadata.class_names must have num_classes entries")
    try:
        # The rule serving applies: refuse at registration what could never be served.
        normalization_of(meta.normalization)
    except ValueError as exc:
        raise InvalidInput(f"metadata.{exc}") from None
    if meta.input_dtype not in INPUT_DTYPES:
        raise InvalidInput(f"metadata.input_dtype must be one of {', '.join(INPUT_DTYPES)}")
    if tuple(meta.input_shape) not in ((1, 28, 28), (28, 28), (784,)):
        raise InvalidInput(
            "metadata.input_shape must be [1,28,28]: the platform serves 28x28 grayscale"
        )


class TorchArtifactInspector:
    """Loads with weights_only=True, checks the metadata and that the weights fit it."""

    def inspect(self, path: Path, override: ArtifactMetadata | None = None) -> ArtifactMetadata:
        """Validate the file and its metadata (``override``, else the sidecar metadata.json)."""
        from ml.artifacts import ArtifactError, load_model, load_state_dict, read_metadata

        try:
            meta = override or read_metadata(path) or ArtifactMetadata()
            check_metadata(meta)
            # With an architecture, building it also loads (and so checks) the state dict.
            if meta.architecture:
                load_model(path, meta)
            else:
                load_state_dict(path)
        except (ArtifactError, ValueError) as exc:
            raise InvalidInput(str(exc)) from None
        return meta
