"""The online runs' projection: one online_runs row per model with a shadow or canary stream."""

from __future__ import annotations

from domain.online.state import OnlineState, evolve, fold, state_row
from events.online import ONLINE_STREAM_PREFIX
from storage.online.tables import online_runs
from storage.repository import Projection

ONLINE_PROJECTION = "online-projections"

ONLINE: Projection[OnlineState] = Projection(
    name=ONLINE_PROJECTION,
    prefix=ONLINE_STREAM_PREFIX,
    key="model_name",
    fold=fold,
    evolve=evolve,
    rows=lambda state: {online_runs: state_row(state)},
    tables=(online_runs,),
)
