"""The notification service: tells the customer how the order ended, and records the end.

Inbox ``notification-events`` (OrderConfirmed, OrderRejected, PaymentDeclined,
OrderCancelled). The message (an e-mail/SMS in a real system) is recorded once per order and
type, and the order gets its final status. It emits nothing: this is where a journey ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orderdeck.events import (
    NOTIFICATION_EVENTS,
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    PaymentDeclined,
)
from orderdeck.services import Service
from orderdeck.store.tx import WriteTx

FINAL_STATUS = {
    "OrderConfirmed": "confirmed",
    "OrderRejected": "rejected",
    "PaymentDeclined": "payment_declined",
    "OrderCancelled": "cancelled",
}


def _cents(n: int) -> str:
    return f"{n // 100}.{n % 100:02d}"


def message_for(event: Any) -> str:
    """The text the customer would receive."""
    if isinstance(event, OrderConfirmed):
        return f"Order {event.orderId} confirmed: {_cents(event.payload.amountCents)} charged."
    if isinstance(event, OrderRejected):
        return f"Order {event.orderId} rejected: {event.payload.reason}."
    if isinstance(event, PaymentDeclined):
        return f"Order {event.orderId}: payment declined ({event.payload.reason})."
    assert isinstance(event, OrderCancelled)
    return (
        f"Order {event.orderId} cancelled ({event.payload.reason}); "
        f"{_cents(event.payload.refundedCents)} refunded."
    )


class NotificationService(Service):
    """Record the customer message and the final status."""

    name = "notification"
    inbox = NOTIFICATION_EVENTS
    accepts = frozenset(FINAL_STATUS)

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        if tx.notify(
            event.orderId,
            event.type,
            event.payload.customerId,
            message_for(event),
            event.eventId,
        ):
            tx.set_status(event.orderId, FINAL_STATUS[event.type])
        return []
