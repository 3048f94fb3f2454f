"""The OrderPlaced events this process fenced, so a tail can tell a dead attempt from an order.

When Kafka does not acknowledge an OrderPlaced in time, the order desk *fences* the event
(marks it processed in the store) and answers 503: no order. The idempotent producer may still
deliver the record once Kafka is back, and the order service then skips it as a replay. A tail
shows that late record like any other, so without help it reads as a live order that never
happened. The desk records each fenced event here and the Topics tail marks the record.

Kept in memory, bounded (the newest :data:`FENCED_KEPT`, oldest dropped): a fenced record
arrives within the producer's delivery timeout of its 503, so older ones no longer matter, and
a fence only this process made is all it knows (another API process's fences are in the
store's processed-events table, which a tail must not read on the UI loop).

The check runs for every record a tail row shows, so it is a dict lookup on the record's order
id (every pipeline record is keyed by it); only a record whose order id had a fenced attempt
has its value parsed, to compare event ids — a retry of the same Idempotency-Key shares the
order id but carries a fresh event id and is a real order.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

#: How many fenced events are remembered (each 503 adds one).
FENCED_KEPT = 1000


class FencedEvents:
    """Event ids fenced after a 503, by order id; safe to read from another thread."""

    def __init__(self, capacity: int = FENCED_KEPT) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        #: event id -> order id, oldest first.
        self._events: OrderedDict[str, str] = OrderedDict()
        #: order id -> how many of its attempts are kept in _events.
        self._orders: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event_id: str, order_id: str) -> None:
        """Remember that ``event_id`` (an attempt at ``order_id``) was fenced."""
        with self._lock:
            if event_id in self._events:
                return
            self._events[event_id] = order_id
            self._orders[order_id] = self._orders.get(order_id, 0) + 1
            while len(self._events) > self.capacity:
                _, dropped = self._events.popitem(last=False)
                left = self._orders[dropped] - 1
                if left:
                    self._orders[dropped] = left
                else:
                    del self._orders[dropped]

    def has_event(self, event_id: str) -> bool:
        """True when ``event_id`` was fenced (and is still remembered)."""
        return event_id in self._events

    def is_fenced(self, order_id: str | None, value: bytes) -> bool:
        """True when the record keyed ``order_id`` with ``value`` is a fenced OrderPlaced.

        Costs one lookup unless the order id had a fenced attempt; then the value's
        ``eventId`` decides.
        """
        if order_id is None or order_id not in self._orders:
            return False
        try:
            data = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
        event_id = data.get("eventId") if isinstance(data, dict) else None
        return isinstance(event_id, str) and event_id in self._events
