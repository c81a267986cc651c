"""The artifact store on the local filesystem: <root>/<model>/<version>/model.pt."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import msgspec

from domain import names
from domain.errors import InvalidInput, NotFound, ServiceUnavailable
from domain.ports import StoredArtifact
from events.registry import ArtifactMetadata

ARTIFACT_FILE = "model.pt"
METADATA_FILE = "metadata.json"


def sha256_file(path: Path) -> tuple[str, int]:
    """sha256 hex and size, streamed."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


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
        dest = folder / ARTIFACT_FILE
        if source != dest:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                copied, size = sha256_file(Path(tmp))
                if copied != sha256:
                    raise InvalidInput("artifact changed while it was being copied; try again")
                os.replace(tmp, dest)
            finally:
                Path(tmp).unlink(missing_ok=True)
        _, size = sha256_file(dest)
        return StoredArtifact(uri=str(dest.relative_to(self.root)), sha256=sha256, size_bytes=size)

    def write_metadata(self, model_name: str, model_version: str, meta: ArtifactMetadata) -> None:
        """Write metadata.json beside model.pt."""
        folder = self.version_dir(model_name, model_version)
        tmp = folder / f".{METADATA_FILE}.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(meta)))
        os.replace(tmp, folder / METADATA_FILE)

    def path_for(self, uri: str) -> Path:
        """The absolute path of a stored artifact uri; refuses escapes."""
        path = (self.root / uri).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInput(f"artifact uri {uri!r} escapes the store")
        if not path.is_file():
            raise NotFound(f"artifact {uri} is missing from {self.root}")
        return path
