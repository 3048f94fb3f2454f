"""With the inventory service stopped, orders stop after ``paid`` and are reported stuck.

The real services run against a real broker and each store engine; only inventory is left
out, so a paid order's stock reservation request waits in its topic unprocessed.
"""

from __future__ import annotations

import asyncio

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend, StoreURL
from tests.services.conftest import JOIN_TIMEOUT_S, Place, order_placed, wait_for


async def test_without_inventory_new_orders_are_stuck_after_paid(
    kafka_connection: KafkaConnection,
    store_url: StoreURL,
    topic_names: TopicNames,
    store: StoreBackend,
    place: Place,
) -> None:
    sup = Supervisor(
        kafka_connection, store_url, topic_names, services=["order", "payment", "notification"]
    )
    await sup.start()
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await sup.wait_joined()
        events = [order_placed(customer="stuck-cust") for _ in range(3)]
        for event in events:
            await place(event)
        ids = {e.orderId for e in events}

        def all_paid() -> bool:
            statuses = store.order_statuses(list(ids))
            return len(statuses) == 3 and set(statuses.values()) == {"paid"}

        await wait_for(all_paid, within=30, what="the orders to be paid")

        def reported_stuck() -> bool:
            return {s.id for s in store.stuck_orders(older_than_s=1.0)} >= ids

        await wait_for(reported_stuck, within=30, what="the paid orders to be reported stuck")
        stuck = [s for s in store.stuck_orders(older_than_s=1.0) if s.id in ids]
        assert {s.status for s in stuck} == {"paid"}
        # The last hop recorded is the payment step (the reservation request was never handled).
        assert {s.lastEvent for s in stuck} == {"PaymentRequested"}
        assert all(s.stuckForS >= 1.0 for s in stuck)
        assert store.stuck_count(older_than_s=1.0) >= 3
    finally:
        await sup.stop()
