"""Key management over HTTP (role admin): create a key (shown once), revoke one, list them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody

from api.access import Access
from api.auth import event_metadata
from api.body_fields import strict_body
from api.deps import Bus, Config, Port
from api.pages import NEXT_PAGE_HEADER, Cursor, Limit, page_size, paged
from api.schemas import Reason
from domain.keys.aggregate import KeyView, check_key_name, key_view
from domain.keys.commands import CreateApiKey, RevokeApiKey
from domain.keys.ports import KeyReader
from domain.paging.cursors import decode_cursor, encode_cursor
from events.keys import Role

KeyName = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", min_length=1, max_length=64)
]


class CreateKeyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /keys: who the key is for (the actor of its events) and its role."""

    key_name: KeyName
    role: Role
    reason: Reason | None = None


class CreatedKey(msgspec.Struct, frozen=True):
    """The new key: shown this once, stored only as its SHA-256."""

    key_name: str
    role: str
    key: str


class RevokeKeyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An optional reason recorded with the revocation; ``force`` (with a reason) revokes even
    the last active admin key."""

    reason: Reason | None = None
    force: bool = False


class KeysController(Controller):
    """API keys: every route here needs the admin role."""

    path = "/keys"
    tags = ["access"]
    opt = {"role": "admin"}

    @post("/", status_code=201, summary="Create a key (shown once)")
    async def create(
        self,
        request: Request,
        bus: Bus,
        data: JSONBody[CreateKeyRequest],
    ) -> CreatedKey:
        """Record ApiKeyCreated with the key's SHA-256 and return the key; 409 if it exists."""
        cmd = CreateApiKey(
            key_name=data.key_name,
            role=data.role,
            reason=data.reason,
            metadata=event_metadata(request),
        )
        result = await bus.handle(cmd)
        _forget(request)
        assert result.secret is not None
        return CreatedKey(key_name=data.key_name, role=data.role, key=result.secret)

    @delete("/{key_name:str}", status_code=200, summary="Revoke a key")
    async def revoke(
        self,
        request: Request,
        bus: Bus,
        key_name: FromPath[str],
        data: JSONBody[RevokeKeyRequest | None] = None,
    ) -> KeyView:
        """Record ApiKeyRevoked; other API processes stop taking it within KEY_CACHE_TTL_S.

        409 for the last active admin key, unless ``force`` with a reason.
        """
        name = check_key_name(key_name)
        body = await strict_body(request, data, RevokeKeyRequest) or RevokeKeyRequest()
        cmd = RevokeApiKey(
            key_name=name,
            reason=body.reason,
            force=body.force,
            metadata=event_metadata(request),
        )
        result = await bus.handle(cmd)
        _forget(request)
        return key_view(result.state)

    @get("/", summary="Keys by name (never the keys themselves)", response_headers=NEXT_PAGE_HEADER)
    async def list_keys(
        self,
        settings: Config,
        keys: Port[KeyReader],
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[KeyView]]:
        """Active and revoked keys with their roles and who created or revoked them."""
        size = page_size(limit, settings)
        after = decode_cursor(cursor, str)[0] if cursor else None
        rows = await keys.list_keys(after, size + 1)
        page = rows[:size]
        return paged(page, encode_cursor(page[-1].key_name) if len(rows) > size else None)


def _forget(request: Request) -> None:
    """This process stops trusting its cached lookups at once (others within the TTL)."""
    access: Access = request.app.state.access
    access.forget()
