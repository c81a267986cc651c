"""Paginated lists: the shared ``limit`` and ``cursor`` parameters and the next-page header.

List endpoints keep their original body (a JSON array); the cursor of the next page travels
in the ``X-Next-Cursor`` header, absent on the last page.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.params import QueryParameter

from bootstrap import Settings
from domain.paging.cursors import MAX_CURSOR_CHARS

NEXT_CURSOR = "X-Next-Cursor"

Limit = Annotated[
    int | None,
    QueryParameter(
        ge=1,
        le=2**31 - 1,
        description="items per page; default DEFAULT_PAGE_SIZE, above MAX_PAGE_SIZE it is clamped",
    ),
]
Cursor = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=MAX_CURSOR_CHARS,
        pattern=r"^[A-Za-z0-9_-]+$",
        description=f"the {NEXT_CURSOR} header of the previous page",
    ),
]
NEXT_PAGE_HEADER = [
    ResponseHeader(
        name=NEXT_CURSOR,
        description="the cursor of the next page; absent on the last page",
        required=False,
        documentation_only=True,
    )
]


def page_size(limit: int | None, settings: Settings) -> int:
    """The page size asked for, or the default, clamped to MAX_PAGE_SIZE."""
    size = settings.api.default_page_size if limit is None else limit
    return max(1, min(size, settings.api.max_page_size))


def paged(items: list[Any], next_cursor: str | None) -> Response[list[Any]]:
    """A page as a JSON array, with the next page's cursor in a header when there is one."""
    return Response(items, headers={NEXT_CURSOR: next_cursor} if next_cursor else None)
