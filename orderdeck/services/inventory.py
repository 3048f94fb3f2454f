"""The inventory service: reserves a paid order's items, all or nothing.

Inbox ``inventory-events`` (StockReservationRequested). If every product has enough stock the
whole order is reserved in one transaction (stock can never go negative: the check and the
decrement happen under the database's write lock, and a CHECK constraint backs it) and the
order is confirmed. Otherwise nothing is reserved and the payment is compensated with a
RefundRequested; the order then ends as ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orderdeck.events import (
    INVENTORY_EVENTS,
    OrderConfirmed,
    OrderConfirmedPayload,
    RefundRequested,
    RefundRequestedPayload,
    StockReservationRequested,
    reply_to,
)
from orderdeck.services import Service
from orderdeck.store import WriteTx


class InventoryService(Service):
    """Reserve stock or trigger the refund."""

    name = "inventory"
    inbox = INVENTORY_EVENTS
    accepts = frozenset({"StockReservationRequested"})

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        assert isinstance(event, StockReservationRequested)
        p = event.payload
        result = tx.reserve(event.orderId, p.items, event.eventId)
        if result.outcome == "duplicate":
            return []
        if result.outcome == "reserved":
            return [
                reply_to(
                    event,
                    OrderConfirmed,
                    OrderConfirmedPayload(
                        customerId=p.customerId, items=p.items, amountCents=p.amountCents
                    ),
                )
            ]
        return [
            reply_to(
                event,
                RefundRequested,
                RefundRequestedPayload(
                    customerId=p.customerId, amountCents=p.amountCents, reason=result.reason
                ),
            )
        ]
