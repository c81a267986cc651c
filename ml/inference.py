"""The inference service: resolves a name (and optional version) to a loaded model and runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from domain.errors import Conflict
from ml.serving import LoadedModel, ModelCache, VersionRef

LookupVersion = Callable[[str, str], Awaitable[VersionRef]]
LookupProd = Callable[[str], Awaitable[str | None]]


class InferenceService:
    """Keeps the prod version of each model in memory; hot swap updates it through ``set_prod``."""

    def __init__(
        self, cache: ModelCache, lookup_version: LookupVersion, lookup_prod: LookupProd
    ) -> None:
        self.cache = cache
        self._lookup_version = lookup_version
        self._lookup_prod = lookup_prod
        self._refs: dict[tuple[str, str], VersionRef] = {}
        self.prod: dict[str, str | None] = {}

    def set_prod(self, model_name: str, model_version: str | None) -> None:
        """Switch which version serves requests that name no version."""
        self.prod[model_name] = model_version

    async def prod_version(self, model_name: str) -> str:
        """The prod version, looked up once and then kept current by hot swap."""
        if model_name not in self.prod:
            ref_version = await self._lookup_prod(model_name)
            self.prod.setdefault(model_name, ref_version)
        version = self.prod[model_name]
        if version is None:
            raise Conflict(
                f"model {model_name!r} has no prod version; promote one or pass model_version"
            )
        return version

    async def ref(self, model_name: str, model_version: str) -> VersionRef:
        """Registry facts of a version (immutable, so cached for good)."""
        key = (model_name, model_version)
        ref = self._refs.get(key)
        if ref is None:
            ref = await self._lookup_version(model_name, model_version)
            if len(self._refs) > 10_000:
                self._refs.clear()
            self._refs[key] = ref
        return ref

    async def resolve(self, model_name: str, model_version: str | None = None) -> LoadedModel:
        """The loaded model for a name and optional version (prod when omitted)."""
        if model_version is None:
            try:
                version = await self.prod_version(model_name)
            except Conflict:
                await self.ref_exists(model_name)
                raise
        else:
            version = model_version
        return await self.cache.get(await self.ref(model_name, version))

    async def ref_exists(self, model_name: str) -> None:
        """Raise NotFound for an unknown model (so 404 wins over 409)."""
        await self._lookup_prod(model_name)

    async def predict(
        self, model_name: str, model_version: str | None, images: np.ndarray
    ) -> tuple[LoadedModel, np.ndarray]:
        """Run uint8 [N,28,28] images through the resolved model; returns (model, logits)."""
        model = await self.resolve(model_name, model_version)
        return model, await model.batcher.submit(images)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
