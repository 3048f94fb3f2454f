"""The business rules of the payment and inventory services, through a real store.

The rules live in ``services/payment.py`` (declines, the credit limit, refunds) and
``services/inventory.py`` (all-or-none reservation), written against the transaction API;
these tests run them on every store engine (the ``store`` fixture), first as functions inside
one transaction, then through the services' ``handle`` as a consumed batch applies them.
"""

from __future__ import annotations

from orderdeck.events import (
    LineItem,
    PaymentDeclined,
    PaymentRequested,
    PaymentRequestedPayload,
    PricedLineItem,
    RefundRequested,
    RefundRequestedPayload,
    StockReservationRequested,
    StockReservationRequestedPayload,
)
from orderdeck.services.inventory import InventoryService, reserve
from orderdeck.services.payment import CREDIT_LIMIT_CENTS, PaymentService, charge, refund
from orderdeck.store import StoreBackend


def _stock(store: StoreBackend) -> dict[str, tuple[int, int]]:
    return {p.id: (p.stock, p.reserved) for p in store.list_products()}


def test_declined_customers_and_the_credit_limit_decline(store: StoreBackend) -> None:
    with store.write() as tx:
        declined = charge(tx, "a", "declined-zed", 100, "e1")
        assert (declined.outcome, declined.reason) == ("declined", "card declined")
        assert charge(tx, "b", "big", CREDIT_LIMIT_CENTS, "e2").outcome == "charged"  # at it
        over = charge(tx, "c", "big", 1, "e3")
        assert over.outcome == "declined"
        assert over.reason == (
            f"credit limit exceeded: {CREDIT_LIMIT_CENTS + 1} > {CREDIT_LIMIT_CENTS} cents"
        )
        assert refund(tx, "b", "big", "e4", "out of stock") == CREDIT_LIMIT_CENTS
        assert charge(tx, "d", "big", 1, "e5").outcome == "charged"  # refunds free the limit
    assert store.order_payments("c") == {"decline": 1}
    assert store.payment_totals() == {
        "charge": CREDIT_LIMIT_CENTS + 1,
        "refund": CREDIT_LIMIT_CENTS,
        "decline": 101,
    }


def test_an_order_is_charged_and_refunded_at_most_once(store: StoreBackend) -> None:
    with store.write() as tx:
        assert charge(tx, "o1", "c", 500, "e1").outcome == "charged"
        # A second request under another event id cannot move money again, nor turn the
        # decided order into a decline.
        assert charge(tx, "o1", "c", 999, "e2").outcome == "duplicate"
        assert charge(tx, "o1", "declined-c", 999, "e2b").outcome == "duplicate"
        assert refund(tx, "o1", "c", "e3", "x") == 500
        assert refund(tx, "o1", "c", "e4", "x") is None
        assert refund(tx, "never-charged", "c", "e5", "x") == 0
    assert store.order_payments("o1") == {"charge": 500, "refund": 500}


def test_reservation_is_all_or_nothing_and_once(store: StoreBackend) -> None:
    store.set_stock("sku-dock", 2)
    before = _stock(store)
    with store.write() as tx:
        short = reserve(tx, "o1", [LineItem(productId="sku-dock", quantity=3)], "e1")
        assert (short.outcome, short.reason) == (
            "out_of_stock",
            "out of stock: sku-dock (wanted 3, available 2)",
        )
        mixed = [
            LineItem(productId="sku-cable", quantity=1),
            LineItem(productId="sku-dock", quantity=3),
        ]
        assert reserve(tx, "o2", mixed, "e2").outcome == "out_of_stock"
        unknown = reserve(tx, "o2b", [LineItem(productId="sku-none", quantity=1)], "e2b")
        assert unknown.reason == "out of stock: sku-none (wanted 1, available 0)"
        two = [
            LineItem(productId="sku-dock", quantity=1),
            LineItem(productId="sku-dock", quantity=1),
        ]
        assert reserve(tx, "o3", two, "e3").outcome == "reserved"
        assert reserve(tx, "o3", two, "e4").outcome == "duplicate"
        last = reserve(tx, "o4", [LineItem(productId="sku-dock", quantity=1)], "e5")
        assert last.outcome == "out_of_stock"
    after = _stock(store)
    assert after["sku-dock"] == (0, 2)
    assert after["sku-cable"] == before["sku-cable"]  # the mixed order took none of it
    assert store.effect_counts()["reservations"] == 5


def _payment_requested(order_id: str, customer: str, cents: int) -> PaymentRequested:
    items = [PricedLineItem(productId="sku-mouse", quantity=1, unitPriceCents=cents)]
    return PaymentRequested(
        orderId=order_id,
        correlationId=order_id,
        payload=PaymentRequestedPayload(customerId=customer, items=items, amountCents=cents),
    )


def test_the_payment_service_declines_over_the_limit_and_refunds_once(
    store: StoreBackend,
) -> None:
    service = PaymentService()
    with store.write() as tx:
        [ok] = service.handle(tx, _payment_requested("p1", "cust", CREDIT_LIMIT_CENTS - 10))
        assert ok.type == "StockReservationRequested"
        [no] = service.handle(tx, _payment_requested("p2", "cust", 11))
        assert isinstance(no, PaymentDeclined)
        assert "credit limit exceeded" in no.payload.reason
        assert service.handle(tx, _payment_requested("p1", "cust", 1)) == []  # decided before
        ask = RefundRequested(
            orderId="p1",
            correlationId="p1",
            payload=RefundRequestedPayload(customerId="cust", amountCents=0, reason="x"),
        )
        [cancelled] = service.handle(tx, ask)
        assert cancelled.payload.refundedCents == CREDIT_LIMIT_CENTS - 10
        assert service.handle(tx, ask) == []
    assert store.order_payments("p1") == {
        "charge": CREDIT_LIMIT_CENTS - 10,
        "refund": CREDIT_LIMIT_CENTS - 10,
    }


def test_the_inventory_service_reserves_everything_or_asks_for_the_refund(
    store: StoreBackend,
) -> None:
    store.set_stock("sku-dock", 1)
    before = _stock(store)

    def request(order_id: str, dock: int) -> StockReservationRequested:
        items = [
            PricedLineItem(productId="sku-cable", quantity=2, unitPriceCents=999),
            PricedLineItem(productId="sku-dock", quantity=dock, unitPriceCents=100),
        ]
        payload = StockReservationRequestedPayload(
            customerId="cust", items=items, amountCents=2 * 999 + 100 * dock
        )
        return StockReservationRequested(orderId=order_id, correlationId=order_id, payload=payload)

    service = InventoryService()
    with store.write() as tx:
        [refund_asked] = service.handle(tx, request("i1", 2))
        assert isinstance(refund_asked, RefundRequested)
        assert "sku-dock (wanted 2, available 1)" in refund_asked.payload.reason
        [confirmed] = service.handle(tx, request("i2", 1))
        assert confirmed.type == "OrderConfirmed"
        assert service.handle(tx, request("i2", 1)) == []
    after = _stock(store)
    assert after["sku-dock"] == (0, 1)
    cable_stock, cable_reserved = before["sku-cable"]
    assert after["sku-cable"] == (cable_stock - 2, cable_reserved + 2)  # i2's only
