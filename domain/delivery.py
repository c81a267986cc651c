"""A consumer-group delivery, carried by the commands that groups send: the handler records
it as processed in the transaction of its effect, so a redelivery changes nothing."""

from __future__ import annotations

import uuid

import msgspec


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """The group and the event id that a command answers."""

    group: str
    event_id: uuid.UUID

    def part(self, name: str) -> Delivery:
        """The key of one of several effects of one event (e.g. one per gate it checks)."""
        return Delivery(group=self.group, event_id=uuid.uuid5(self.event_id, name))
