"""The ``traffic-recorder`` group: store the batches of captured requests that API processes
write to ``traffic.captured`` in PostgreSQL (captured_requests), so they outlive Redis.

A redelivered batch stores nothing twice (the request id is the key); a malformed entry is
logged and skipped, since no retry can mend it.
"""

from __future__ import annotations

from consumers.row_batches import row_batch_handlers
from domain.traffic.commands import RecordCaptured, decode_rows
from events.traffic import CAPTURED_STREAM
from observability.metrics import instruments

GROUP = "traffic-recorder"
STREAMS = [CAPTURED_STREAM]
COUNT = 20  # entries (of up to 64 requests each) per read
handle, dead_lettered = row_batch_handlers(
    GROUP, "captured", decode_rows, RecordCaptured, lambda: instruments().traffic_recorded
)
