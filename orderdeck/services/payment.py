"""The payment service: charges orders and refunds them when they cannot be fulfilled.

Inbox ``payment-events``. PaymentRequested is decided by the payment rules below (simulated,
deterministic), written once against the store's transaction API so that every backend
applies the same ones:

1. a customer id starting with :data:`DECLINED_PREFIX` (``declined-``) is always declined;
2. a customer whose outstanding charges (charges minus refunds) plus this order would exceed
   :data:`CREDIT_LIMIT_CENTS` (5,000.00) is declined;
3. otherwise the order is charged its full amount.

A charged order asks the inventory for its items, a declined one ends as PaymentDeclined.
RefundRequested (the saga's compensation after an out-of-stock) refunds exactly what was
charged and ends the order as OrderCancelled. The database's constraints allow one charge or
decline and one refund per order, so a request seen twice under different event ids still
cannot move money twice; the outstanding total is read "for update", so two charges of one
customer in concurrent transactions cannot both slip under the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
from orderdeck.store.tx import WriteTx

CREDIT_LIMIT_CENTS = 500_000
DECLINED_PREFIX = "declined-"


@dataclass(frozen=True)
class ChargeResult:
    """What the payment rules decided for one order."""

    outcome: Literal["charged", "declined", "duplicate"]
    amount_cents: int
    reason: str = ""


def charge(
    tx: WriteTx, order_id: str, customer_id: str, amount_cents: int, event_id: str
) -> ChargeResult:
    """Apply the payment rules (see the module docstring) to one order, once.

    ``duplicate``: the order was decided before (under any event id); nothing changed.
    """
    reason = ""
    if customer_id.startswith(DECLINED_PREFIX):
        reason = "card declined"
    else:
        outstanding = tx.outstanding_cents_for_update(customer_id)
        if outstanding + amount_cents > CREDIT_LIMIT_CENTS:
            reason = (
                f"credit limit exceeded: {outstanding + amount_cents} > {CREDIT_LIMIT_CENTS} cents"
            )
    if reason:
        if not tx.record_decline(order_id, customer_id, amount_cents, event_id, reason):
            return ChargeResult("duplicate", amount_cents)
        return ChargeResult("declined", amount_cents, reason)
    if not tx.record_charge(order_id, customer_id, amount_cents, event_id):
        return ChargeResult("duplicate", amount_cents)
    tx.set_status(order_id, "paid")
    return ChargeResult("charged", amount_cents)


def refund(tx: WriteTx, order_id: str, customer_id: str, event_id: str, reason: str) -> int | None:
    """Refund exactly the order's charge (0 if it was never charged), once.

    Returns the refunded cents, or None if the order was refunded before (nothing changed).
    """
    amount = tx.charged_cents(order_id) or 0
    if not tx.record_refund(order_id, customer_id, amount, event_id, reason):
        return None
    tx.set_status(order_id, "refunded")
    return amount


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
        result = charge(tx, event.orderId, p.customerId, p.amountCents, event.eventId)
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
        refunded = refund(tx, event.orderId, p.customerId, event.eventId, p.reason)
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
