"""The inventory service: reserves a paid order's items, all or nothing.

Inbox ``inventory-events`` (StockReservationRequested). The rule (:func:`reserve`) is written
once against the store's transaction API: if every product has enough stock the whole order
is reserved in one transaction and the order is confirmed; otherwise nothing is reserved and
the payment is compensated with a RefundRequested, and the order ends as ``cancelled``.

Stock can never go negative: the stock is read "for update" (held against every other
transaction until this one ends, whatever the engine's way of holding it), the decrement
happens in the same transaction, and a CHECK constraint backs it. The reservation row is
unique per order, so a request seen twice under different event ids reserves once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orderdeck.events import (
    INVENTORY_EVENTS,
    LineItem,
    OrderConfirmed,
    OrderConfirmedPayload,
    RefundRequested,
    RefundRequestedPayload,
    StockReservationRequested,
    reply_to,
)
from orderdeck.services import Service
from orderdeck.store.tx import ReservationOutcome, WriteTx


@dataclass(frozen=True)
class ReserveResult:
    """What the inventory decided for one order."""

    outcome: Literal["reserved", "out_of_stock", "duplicate"]
    reason: str = ""


def reserve(tx: WriteTx, order_id: str, items: Sequence[LineItem], event_id: str) -> ReserveResult:
    """Reserve every item of an order, all or nothing, once per order.

    ``duplicate``: the order's reservation was decided before; nothing changed.
    """
    wanted: dict[str, int] = {}
    for item in items:
        wanted[item.productId] = wanted.get(item.productId, 0) + item.quantity
    stock = tx.stock_for_update(list(wanted))
    short = [
        f"{product_id} (wanted {qty}, available {stock.get(product_id, 0)})"
        for product_id, qty in sorted(wanted.items())
        if stock.get(product_id, 0) < qty
    ]
    outcome: ReservationOutcome = "out_of_stock" if short else "reserved"
    # The reservation row claims the order first: a second request changes nothing.
    if not tx.record_reservation(order_id, outcome, wanted, event_id):
        return ReserveResult("duplicate")
    if not short:
        tx.take_stock(wanted)
    tx.set_status(order_id, outcome)
    return ReserveResult(outcome, "out of stock: " + ", ".join(short) if short else "")


class InventoryService(Service):
    """Reserve stock or trigger the refund."""

    name = "inventory"
    inbox = INVENTORY_EVENTS
    accepts = frozenset({"StockReservationRequested"})

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        assert isinstance(event, StockReservationRequested)
        p = event.payload
        result = reserve(tx, event.orderId, p.items, event.eventId)
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
