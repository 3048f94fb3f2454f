"""Stuck orders: in-flight orders older than a bound, where each stopped, on both engines."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from orderdeck.events import LineItem, OrderPlaced, OrderPlacedPayload
from orderdeck.store import StoreBackend


def _place(store: StoreBackend, order_id: str, age_s: float, offset: int) -> None:
    event = OrderPlaced(
        orderId=order_id,
        correlationId=order_id,
        occurredAt=datetime.now(UTC) - timedelta(seconds=age_s),
        payload=OrderPlacedPayload(
            customerId="stuck-test", items=[LineItem(productId="sku-mouse", quantity=1)]
        ),
    )
    store.record_placed(event, "order-events", 0, offset, int(time.time() * 1000))


def test_only_old_in_flight_orders_are_stuck_oldest_first(store: StoreBackend) -> None:
    _place(store, "old-placed", 120, 0)
    _place(store, "old-paid", 90, 1)
    _place(store, "old-confirmed", 100, 2)
    _place(store, "new-placed", 1, 3)
    with store.write() as tx:
        tx.set_status("old-paid", "paid", amount_cents=100)
        tx.set_status("old-confirmed", "confirmed")

    stuck = store.stuck_orders(older_than_s=30)
    assert [(s.id, s.status) for s in stuck] == [("old-placed", "placed"), ("old-paid", "paid")]
    assert all(s.lastEvent == "OrderPlaced" for s in stuck)
    assert 119 <= stuck[0].stuckForS < 180
    assert 89 <= stuck[1].stuckForS < 150
    assert stuck[0].customerId == "stuck-test"

    assert [s.id for s in store.stuck_orders(older_than_s=100)] == ["old-placed"]
    assert [s.id for s in store.stuck_orders(older_than_s=0.5, limit=2)] == [
        "old-placed",
        "old-paid",
    ]
    assert store.stuck_orders(older_than_s=600) == []
    assert store.stuck_count(older_than_s=30) == 2
    assert store.stuck_count(older_than_s=0.5) == 3
    assert store.stuck_count(older_than_s=600) == 0
