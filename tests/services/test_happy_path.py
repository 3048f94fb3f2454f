"""The order journeys end to end through the four services on a real broker."""

from __future__ import annotations

from orderdeck.events import TopicNames
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend
from tests.services.conftest import Place, order_placed, wait_for


async def test_happy_path_confirms_with_four_hop_journey(
    services: Supervisor, store: StoreBackend, place: Place, topic_names: TopicNames
) -> None:
    event = order_placed("alice", [("sku-keyboard", 2), ("sku-mouse", 1)])
    await place(event)
    await wait_for(lambda: _status(store, event.orderId) == "confirmed", what="confirmed")

    order = store.get_order(event.orderId)
    assert order is not None
    assert order.amountCents == 2 * 8999 + 2999
    assert [h.type for h in order.journey] == [
        "OrderPlaced",
        "PaymentRequested",
        "StockReservationRequested",
        "OrderConfirmed",
    ]
    assert [h.topic for h in order.journey] == list(topic_names.pipeline())
    assert [h.service for h in order.journey] == ["order", "payment", "inventory", "notification"]
    assert all(h.offset >= 0 and h.timestamp > 0 for h in order.journey)
    assert len({h.partition for h in order.journey}) == 1  # keyed by order id
    assert [c.status for c in order.history] == [
        "placed",
        "pending",
        "paid",
        "reserved",
        "confirmed",
    ]
    assert store.order_payments(event.orderId) == {"charge": order.amountCents}
    stock = {p.id: p for p in store.list_products()}
    assert stock["sku-keyboard"].reserved == 2
    assert [t for t, _ in store.notifications_for(event.orderId)] == ["OrderConfirmed"]


async def test_declined_customer_ends_payment_declined(
    services: Supervisor, store: StoreBackend, place: Place
) -> None:
    event = order_placed("declined-bob")
    await place(event)
    await wait_for(lambda: _status(store, event.orderId) == "payment_declined", what="declined")
    assert "charge" not in store.order_payments(event.orderId)
    assert [t for t, _ in store.notifications_for(event.orderId)] == ["PaymentDeclined"]


async def test_out_of_stock_is_cancelled_with_refund_equal_to_charge(
    services: Supervisor, store: StoreBackend, place: Place
) -> None:
    store.set_stock("sku-monitor", 1)
    event = order_placed("carol", [("sku-monitor", 2), ("sku-cable", 1)])
    await place(event)
    await wait_for(lambda: _status(store, event.orderId) == "cancelled", what="cancelled")

    payments = store.order_payments(event.orderId)
    assert payments["refund"] == payments["charge"] == 2 * 27999 + 999
    order = store.get_order(event.orderId)
    assert order is not None
    assert order.refundedCents == payments["charge"]
    assert [h.type for h in order.journey][-2:] == ["RefundRequested", "OrderCancelled"]
    stock = {p.id: p for p in store.list_products()}
    assert stock["sku-monitor"].stock == 1  # all or nothing: the cable was not reserved either
    assert stock["sku-cable"].reserved == 0


async def test_unknown_product_is_rejected(
    services: Supervisor, store: StoreBackend, place: Place
) -> None:
    event = order_placed("dave", [("sku-does-not-exist", 1)])
    await place(event)
    await wait_for(lambda: _status(store, event.orderId) == "rejected", what="rejected")
    assert store.order_payments(event.orderId) == {}


def _status(store: StoreBackend, order_id: str) -> str | None:
    order = store.get_order(order_id)
    return order.status if order else None
