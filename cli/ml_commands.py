"""Training verbs of the CLI: train a zoo architecture and register it like `register` does."""

from __future__ import annotations

import argparse
import shutil
import uuid

import anyio

from cli.output import console
from cli.registry_commands import Values, _publish, need, platform
from domain.errors import InvalidInput
from domain.registry.commands import GetModel, RegisterModelVersion
from domain.registry.reference import accuracy_label
from domain.transactions import CommandResult
from events.base import EventMetadata


def next_version(existing: list[str]) -> str:
    """The first free ``vN.0.0``."""
    n = 1
    while f"v{n}.0.0" in existing:
        n += 1
    return f"v{n}.0.0"


async def train_and_register(
    p,
    meta: EventMetadata,
    *,
    model_name: str,
    arch: str,
    dataset: str,
    epochs: int | None,
    version: str | None,
    seed: int = 0,
    reason: str | None = None,
) -> CommandResult:
    """Train on ``<dataset>_train``, write the artifact, register it through the domain path."""
    from ml.datasets import NAMES, DatasetError, parse_dataset_id
    from ml.training import DEFAULT_EPOCHS, train
    from ml.zoo import UnknownArchitecture, build_model

    try:
        build_model(arch)
        # A bare name ("fashion_mnist") means its train split.
        ref = parse_dataset_id(f"{dataset}_train" if dataset in NAMES else dataset)
    except (UnknownArchitecture, DatasetError) as exc:
        raise InvalidInput(str(exc)) from None
    if version is None:
        state = await p.bus.handle(GetModel(model_name=model_name))
        version = next_version(list(state.versions))
    s = p.settings
    try:
        # Training takes minutes: run it in a thread so the loop (and its connections) stay alive.
        result = await anyio.to_thread.run_sync(
            lambda: train(
                arch,
                f"{ref.name}_train",
                epochs=epochs or DEFAULT_EPOCHS,
                seed=seed,
                data_dir=s.files.data_dir,
                cache_dir=s.files.cache_dir,
                allow_download=s.files.allow_download,
                device=s.serving.device,
            )
        )
    except DatasetError as exc:
        raise InvalidInput(str(exc)) from None
    from ml.artifacts import save_artifact

    incoming = p.artifacts.root / ".incoming" / uuid.uuid4().hex
    try:
        path = save_artifact(result.model, result.metadata, incoming)
        cmd = RegisterModelVersion(
            model_name=model_name,
            model_version=version,
            source=str(path),
            tags={"arch": arch, "dataset": ref.name},
            reason=reason or f"trained {arch} on {ref.name}_train",
            artifact_metadata=result.metadata,
            metadata=meta,
        )
        return await p.bus.handle(cmd)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


async def train_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """train NAME ARCH DATASET [EPOCHS]."""
    (name,) = need(values, "model_name")
    if not args.arch or not args.dataset:
        raise InvalidInput("usage: train MODEL_NAME ARCH DATASET [EPOCHS]")
    async with platform() as p:
        result = await train_and_register(
            p,
            meta,
            model_name=name,
            arch=args.arch,
            dataset=args.dataset,
            epochs=args.epochs,
            version=args.version,
            seed=args.seed,
        )
        await _publish(p)
    v = next(iter(r.event for r in result.recorded), None)
    version = v.model_version if v else args.version  # type: ignore[union-attr]
    state = result.state.versions[version]
    training = state.metadata.training
    acc = state.metadata.test_metrics.get("accuracy", float("nan"))
    measured = accuracy_label(acc, training.get("eval_dataset"), training.get("eval_samples"))
    console.print(
        f"registered {name} {version} ({args.arch} on {args.dataset}): "
        f"test accuracy {measured}, trained in {training.get('wall_seconds')}s"
    )
    return 0


async def datasets_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """List installed datasets with their sizes and sources."""
    from rich.table import Table

    from bootstrap import get_settings
    from ml.datasets import available_datasets

    s = get_settings()
    table = Table(title="installed datasets")
    for col in ("name", "split", "images", "source", "example ids"):
        table.add_column(col)
    infos = available_datasets(data_dir=s.files.data_dir, cache_dir=s.files.cache_dir)
    for info in infos:
        for split, size in info.split_sizes.items():
            table.add_row(
                info.name, split, f"{size:,}", info.sources[split], ", ".join(info.example_ids)
            )
    console.print(table)
    return 0
