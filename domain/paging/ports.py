"""Read-side ports of the paginated list endpoints: one page and the cursor of the next."""

from __future__ import annotations

from typing import Protocol

from domain.registry.views import HistoryEntry, JobView, ModelSummary, ModelVersionView


class RegistryPages(Protocol):
    """The registry's lists a page at a time (cursors from domain.paging.cursors)."""

    async def page_models(
        self, limit: int, cursor: str | None
    ) -> tuple[list[ModelSummary], str | None]:
        """Every version of every model, by model name, newest version first within a model."""
        ...

    async def page_versions(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[ModelVersionView], str | None]:
        """One model's versions, oldest first; NotFound if the model is unknown."""
        ...

    async def page_history(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[HistoryEntry], str | None]:
        """The model's events, oldest first; NotFound if the model is unknown."""
        ...


class JobPages(Protocol):
    """Batch jobs a page at a time."""

    async def page(
        self, model_name: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobView], str | None]:
        """Newest jobs first, optionally filtered."""
        ...
