"""`just reproduce`: retrain a registered version from the recipe in its registration event."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bootstrap import Settings
from cli.output import console
from domain.audit.reports import recipe_from_metadata
from domain.errors import InvalidInput

_PRECISION = {"bf16-autocast": "bf16", "fp32": "fp32"}


async def retrain(metadata: dict[str, Any], what: str, settings: Settings) -> str:
    """Train again from the recorded recipe, off the event loop; the sha256 of the artifact."""
    recipe = recipe_from_metadata(metadata, what)
    if recipe.precision not in _PRECISION:
        raise InvalidInput(f"{what} was trained with unknown precision {recipe.precision!r}")
    import torch

    made_with = metadata.get("created_with")
    if made_with and made_with != f"torch {torch.__version__}":
        console.print(
            f"note: {what} was made with {made_with}, this is torch "
            f"{torch.__version__}; the weights may differ",
            highlight=False,
        )
    console.print(
        f"retraining {what}: {recipe.architecture} on {recipe.dataset} "
        f"({recipe.train_samples} images), {recipe.epochs} epochs, batch {recipe.batch_size}, "
        f"lr {recipe.lr}, seed {recipe.seed}, {recipe.threads} threads, {recipe.precision}, "
        f"{recipe.device}",
        highlight=False,
    )

    def run() -> str:
        from ml.artifacts import save_artifact, sha256_file
        from ml.training import train

        result = train(
            recipe.architecture,
            recipe.dataset,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            seed=recipe.seed,
            threads=recipe.threads,
            train_limit=recipe.train_samples,
            mixed_precision=_PRECISION[recipe.precision],
            device=recipe.device,
            data_dir=settings.files.data_dir,
            cache_dir=settings.files.cache_dir,
            allow_download=settings.files.allow_download,
        )
        with tempfile.TemporaryDirectory() as tmp:
            return sha256_file(save_artifact(result.model, result.metadata, Path(tmp)))[0]

    return await asyncio.to_thread(run)
