"""The artifact store on the local filesystem: <root>/<model>/<version>/model.pt."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from domain import names
from domain.errors import InvalidInput, NotFound, ServiceUnavailable
from domain.registry.ports import StoredArtifact
from events.registry import ArtifactMetadata
from ml.artifact_files import (
    MAX_METADATA_BYTES,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    atomic_write,
    read_regular,
    sha256_file,
    write_metadata,
)

__all__ = ["LocalArtifactStore", "sha256_file"]
STAGING = ".staging"  # under the store root: sources copied in once, before they are checked
STAGING_TTL_S = 600


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
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no file on disk can have this name
            raise InvalidInput("artifact path is not valid UTF-8 text") from None
        try:
            resolved = Path(source).expanduser().resolve(strict=True)
        except (FileNotFoundError, RuntimeError, OSError, ValueError):
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
        return self._stage(source, resolved, allowed)

    def _stage(self, source: str, resolved: Path, allowed: tuple[Path, ...]) -> Path:
        """Copy the file (and the metadata.json beside it) into a private staging folder.

        Each is read once, without following a symlink, so the bytes that are hashed,
        inspected and stored are the same even if the source changes meanwhile.
        """
        try:
            data = read_regular(resolved, self.max_bytes)
        except ArtifactError as exc:
            raise InvalidInput(f"artifact {source}: {str(exc).split(': ', 1)[-1]}") from None
        if not data:
            raise InvalidInput(f"artifact file {source} is empty")
        meta = None
        sidecar = resolved.with_name(METADATA_FILE)
        if os.path.lexists(sidecar):
            try:
                real = sidecar.resolve(strict=True)
            except (RuntimeError, OSError):  # a dangling link or a loop
                raise InvalidInput(f"{sidecar} cannot be read (a broken symbolic link?)") from None
            if not any(real.is_relative_to(root) for root in allowed):
                raise InvalidInput(
                    f"{sidecar} leads outside the allowed roots; metadata.json is read only "
                    "from ARTIFACT_IMPORT_ROOTS, like the model file"
                )
            try:
                meta = read_regular(real, MAX_METADATA_BYTES)
            except ArtifactError as exc:
                raise InvalidInput(f"{sidecar}: {str(exc).split(': ', 1)[-1]}") from None
        staging = self.root / STAGING
        self._sweep(staging)
        folder = staging / uuid.uuid4().hex
        try:
            folder.mkdir(parents=True)
            (folder / MODEL_FILE).write_bytes(data)
            if meta is not None:
                (folder / METADATA_FILE).write_bytes(meta)
        except OSError as exc:
            raise ServiceUnavailable(
                f"the artifact store cannot write ({exc.strerror or exc})"
            ) from None
        return folder / MODEL_FILE

    @staticmethod
    def _sweep(staging: Path) -> None:
        """Remove staging folders of registrations that ended without storing (an hour on)."""
        cutoff = time.time() - STAGING_TTL_S
        for old in staging.glob("*") if staging.is_dir() else ():
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)

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
            if source.parent.parent == self.root / STAGING:
                shutil.rmtree(source.parent, ignore_errors=True)
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
