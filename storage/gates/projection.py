"""The regression gates' projection: one gates row per gate."""

from __future__ import annotations

from domain.gates.state import GateState, evolve, fold
from domain.gates.views import gate_row
from events.streams import GATE_STREAM_PREFIX
from storage.repository import Projection
from storage.tables import gates

GATE_PROJECTION = "gate-projections"

GATES: Projection[GateState] = Projection(
    name=GATE_PROJECTION,
    prefix=GATE_STREAM_PREFIX,
    key="gate_id",
    fold=fold,
    evolve=evolve,
    rows=lambda state: {gates: [gate_row(state)]},
    tables=(gates,),
)
