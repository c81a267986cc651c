"""`just reproduce`: retraining from the recorded recipe gives the registered sha256."""

from __future__ import annotations

import msgspec
import pytest

from domain.registry.commands import RegisterModelVersion
from events.base import EventMetadata
from tests.integration.audit.support import cli

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="trainer")


def _train(tmp_path, seed: int):
    """What `just train` does, on 300 images for one epoch, fp32 on one CPU thread."""
    from ml.artifacts import save_artifact
    from ml.training import train
    from settings import get_settings

    s = get_settings()
    result = train(
        "mnist_cnn",
        "fashion_mnist_train",
        epochs=1,
        seed=seed,
        threads=1,
        train_limit=300,
        mixed_precision="fp32",
        device="cpu",
        progress=False,
        data_dir=s.files.data_dir,
        cache_dir=s.files.cache_dir,
    )
    return save_artifact(result.model, result.metadata, tmp_path / f"seed{seed}"), result.metadata


async def _register(p, version: str, path, metadata) -> None:
    await p.bus.handle(
        RegisterModelVersion(
            model_name="reproduced",
            model_version=version,
            source=str(path),
            tags={},
            reason="trained",
            metadata=META,
            artifact_metadata=metadata,
        )
    )


async def test_a_version_reproduces_from_its_registration_event(private, tmp_path) -> None:
    path, metadata = _train(tmp_path, seed=7)
    await _register(private, "v1", path, metadata)
    recorded = (await private.queries.get_version("reproduced", "v1")).metadata["training"]
    assert (recorded["seed"], recorded["train_samples"], recorded["device"]) == (7, 300, "cpu")
    done = cli(private, "reproduce", "reproduced", "v1")
    assert done.returncode == 0, done.stdout + done.stderr
    sha = (await private.queries.get_version("reproduced", "v1")).sha256
    assert f"sha256 {sha} equals the registered one" in done.stdout


async def test_a_recipe_that_does_not_match_the_weights_is_reported(private, tmp_path) -> None:
    path, metadata = _train(tmp_path, seed=1)
    # The weights come from seed 1, the recorded recipe claims seed 2.
    claimed = msgspec.structs.replace(metadata, training={**metadata.training, "seed": 2})
    await _register(private, "v2", path, claimed)
    done = cli(private, "reproduce", "reproduced", "v2")
    assert done.returncode == 4
    assert "reproduced v2 did not reproduce: sha256" in done.stderr
    bare = msgspec.structs.replace(metadata, training={})
    await _register(private, "v3", path, bare)
    done = cli(private, "reproduce", "reproduced", "v3")
    assert done.returncode == 1 and "records no full training recipe" in done.stderr
    missing = cli(private, "reproduce", "reproduced", "v9")
    assert missing.returncode == 1 and "has no version 'v9'" in missing.stderr
