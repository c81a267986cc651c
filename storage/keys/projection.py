"""The API keys' projection: one api_keys row per key name."""

from __future__ import annotations

from domain.keys.aggregate import ApiKeyState, evolve_key, fold_key, key_row
from events.keys import KEY_STREAM_PREFIX
from storage.repository import Projection
from storage.tables import api_keys

KEY_PROJECTION = "key-projections"

KEYS: Projection[ApiKeyState] = Projection(
    name=KEY_PROJECTION,
    prefix=KEY_STREAM_PREFIX,
    key="key_name",
    fold=fold_key,
    evolve=evolve_key,
    rows=lambda state: {api_keys: [key_row(state)]},
    tables=(api_keys,),
)
