"""The payment service: charges orders and refunds them when they cannot be fulfilled.

Inbox ``payment-events``. PaymentRequested is charged under the deterministic rules in
``orderdeck.store`` (``declined-`` customers, a per-customer credit limit); a charged order asks
the inventory for its items, a declined one ends as PaymentDeclined. RefundRequested (the
saga's compensation after an out-of-stock) refunds exactly what was charged and ends the order
as OrderCancelled. The store allows one charge, one decline and one refund per order, so a
request seen twice under different event ids still cannot move money twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orderdeck.events import (
    PAYMENT_EVENTS,
    OrderCancelled,
    OrderCancelledPayload,
    PaymentDeclined,
    PaymentDeclinedPayload,
    PaymentRequested,
    RefundRequested,
    StockReservationRequested,
    StockReservationRequestedPayload,
    reply_to,
)
from orderdeck.services import Service
from orderdeck.store import WriteTx


class PaymentService(Service):
    """Charge, decline and refund."""

    name = "payment"
    inbox = PAYMENT_EVENTS
    accepts = frozenset({"PaymentRequested", "RefundRequested"})

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        if isinstance(event, PaymentRequested):
            return self._charge(tx, event)
        assert isinstance(event, RefundRequested)
        return self._refund(tx, event)

    def _charge(self, tx: WriteTx, event: PaymentRequested) -> Sequence[Any]:
        p = event.payload
        result = tx.charge(event.orderId, p.customerId, p.amountCents, event.eventId)
        if result.outcome == "duplicate":
            return []
        if result.outcome == "declined":
            return [
                reply_to(
                    event,
                    PaymentDeclined,
                    PaymentDeclinedPayload(
                        customerId=p.customerId, amountCents=p.amountCents, reason=result.reason
                    ),
                )
            ]
        return [
            reply_to(
                event,
                StockReservationRequested,
                StockReservationRequestedPayload(
                    customerId=p.customerId, items=p.items, amountCents=p.amountCents
                ),
            )
        ]

    def _refund(self, tx: WriteTx, event: RefundRequested) -> Sequence[Any]:
        p = event.payload
        refunded = tx.refund(event.orderId, p.customerId, event.eventId, p.reason)
        if refunded is None:
            return []
        return [
            reply_to(
                event,
                OrderCancelled,
                OrderCancelledPayload(
                    customerId=p.customerId, refundedCents=refunded, reason=p.reason
                ),
            )
        ]
