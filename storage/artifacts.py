"""The artifact store on the local filesystem: <root>/<model>/<version>/model.pt."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from domain import names
from domain.errors import InvalidInput, NotFound, ServiceUnavailable
from domain.ports import StoredArtifact
from events.registry import ArtifactMetadata
from ml.artifact_files import MODEL_FILE, atomic_write, sha256_file, write_metadata

__all__ = ["LocalArtifactStore", "sha256_file"]


class LocalArtifactStore:
    """Implements domain.ports.ArtifactStore."""

    def __init__(self, root: Path, import_roots: tuple[Path, ...], max_bytes: int) -> None:
        self.root = root.resolve()
        self.import_roots = tuple(p.resolve() for p in import_roots)
        self.max_bytes = max_bytes

    def resolve_source(self, source: str) -> Path:
        """Resolve a user-given path, refusing anything outside the import roots."""
        if not source or "\x00" in source:
            raise InvalidInput("artifact path is empty or contains a NUL byte")
        path = Path(source).expanduser()
        try:
            resolved = path.resolve(strict=True)
        except (FileNotFoundError, RuntimeError, OSError):
            raise InvalidInput(f"artifact file not found: {source}") from None
        allowed = (*self.import_roots, self.root)
        if not any(resolved.is_relative_to(root) for root in allowed):
            roots = ", ".join(str(r) for r in self.import_roots)
            raise InvalidInput(
                f"artifact path {source} is outside the allowed roots ({roots}); "
                "set ARTIFACT_IMPORT_ROOTS to allow another folder"
            )
        if not resolved.is_file():
            raise InvalidInput(f"artifact path {source} is not a regular file")
        size = resolved.stat().st_size
        if size == 0:
            raise InvalidInput(f"artifact file {source} is empty")
        if size > self.max_bytes:
            raise InvalidInput(
                f"artifact file is {size} bytes; the limit is {self.max_bytes} (MAX_ARTIFACT_BYTES)"
            )
        return resolved

    def digest(self, path: Path) -> tuple[str, int]:
        """sha256 hex and size of a file."""
        try:
            return sha256_file(path)
        except OSError as exc:
            raise InvalidInput(
                f"artifact file {path} cannot be read ({exc.strerror or exc})"
            ) from None

    def version_dir(self, model_name: str, model_version: str) -> Path:
        """The folder of one version; names are validated so this cannot escape the root."""
        names.check_model_name(model_name)
        names.check_version(model_version)
        folder = (self.root / model_name / model_version).resolve()
        if not folder.is_relative_to(self.root):
            raise InvalidInput("artifact location escapes the store")
        return folder

    def put(self, source: Path, model_name: str, model_version: str, sha256: str) -> StoredArtifact:
        """Copy atomically (temp file, fsync, rename) and check the copy's hash."""
        try:
            return self._put(source, model_name, model_version, sha256)
        except OSError as exc:
            raise ServiceUnavailable(
                f"the artifact store cannot write ({exc.strerror or exc})"
            ) from None

    def discard(self, model_name: str, model_version: str) -> None:
        """Remove a version's folder (used when its registration did not commit)."""
        shutil.rmtree(self.version_dir(model_name, model_version), ignore_errors=True)

    def _put(
        self, source: Path, model_name: str, model_version: str, sha256: str
    ) -> StoredArtifact:
        folder = self.version_dir(model_name, model_version)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / MODEL_FILE
        if source != dest:

            def copy(out: BinaryIO) -> None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)

            def same_as_digested(tmp: Path) -> None:
                if sha256_file(tmp)[0] != sha256:
                    raise InvalidInput("artifact changed while it was being copied; try again")

            atomic_write(dest, copy, check=same_as_digested)
        _, size = sha256_file(dest)
        return StoredArtifact(uri=str(dest.relative_to(self.root)), sha256=sha256, size_bytes=size)

    def write_metadata(self, model_name: str, model_version: str, meta: ArtifactMetadata) -> None:
        """Write metadata.json beside model.pt (the format ``ml.artifact_files`` defines)."""
        write_metadata(self.version_dir(model_name, model_version), meta)

    def path_for(self, uri: str) -> Path:
        """The absolute path of a stored artifact uri; refuses escapes."""
        path = (self.root / uri).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInput(f"artifact uri {uri!r} escapes the store")
        if not path.is_file():
            raise NotFound(f"artifact {uri} is missing from {self.root}")
        return path
