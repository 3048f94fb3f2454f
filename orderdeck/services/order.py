"""The order service: turns an accepted order into a payment request, or rejects it.

Inbox ``order-events`` (OrderPlaced, including records in the original project's shape, which
``events.decode`` converts). The service checks every product against the catalog, stores the
order as ``pending`` with the catalog prices of this moment, and asks for payment of the total.
An order naming an unknown product is rejected (OrderRejected -> notification). An OrderPlaced
that reuses an existing order id under another event id is ignored: it must not touch the
order it collides with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orderdeck.events import (
    ORDER_EVENTS,
    OrderPlaced,
    OrderRejected,
    OrderRejectedPayload,
    PaymentRequested,
    PaymentRequestedPayload,
    PricedLineItem,
    reply_to,
)
from orderdeck.services import Service
from orderdeck.store.tx import WriteTx


class OrderService(Service):
    """Validate and price orders."""

    name = "order"
    inbox = ORDER_EVENTS
    accepts = frozenset({"OrderPlaced"})
    paced = True  # its inbox gets one record per API request

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        assert isinstance(event, OrderPlaced)
        customer = event.payload.customerId
        items = event.payload.items
        prices = tx.product_prices([i.productId for i in items])
        unknown = sorted({i.productId for i in items if i.productId not in prices})
        if unknown:
            if not tx.register_order(event):
                return []
            return [
                reply_to(
                    event,
                    OrderRejected,
                    OrderRejectedPayload(
                        customerId=customer, reason="unknown product: " + ", ".join(unknown)
                    ),
                )
            ]
        priced = [
            PricedLineItem(
                productId=i.productId, quantity=i.quantity, unitPriceCents=prices[i.productId]
            )
            for i in items
        ]
        if not tx.accept_order(event, priced):
            return []
        return [
            reply_to(
                event,
                PaymentRequested,
                PaymentRequestedPayload(
                    customerId=customer,
                    items=priced,
                    amountCents=sum(i.unitPriceCents * i.quantity for i in priced),
                ),
            )
        ]
