"""Registry set-up shared by the fault tests: versions of small state dicts, through the handler."""

from __future__ import annotations

from domain.registry.commands import RegisterModelVersion
from events.base import EventMetadata

META = EventMetadata(actor="tester")


async def register_versions(
    p, model_name: str, state_dict_file, versions=("v1", "v2", "v3")
) -> None:
    """Register each version of ``model_name`` from its own small state dict (seed = index)."""
    for i, version in enumerate(versions):
        await p.bus.handle(
            RegisterModelVersion(
                model_name=model_name,
                model_version=version,
                source=str(state_dict_file(f"{version}.pt", i)),
                tags={},
                metadata=META,
            )
        )
