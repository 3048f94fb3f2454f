"""No lost or doubled effects: contention, replays, crashes between the loop's steps."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderdeck.events import (
    PaymentRequested,
    PaymentRequestedPayload,
    PricedLineItem,
    TopicNames,
    encode,
    headers_for,
)
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.services import SERVICE_NAMES
from orderdeck.services.supervisor import Supervisor
from orderdeck.store import StoreBackend
from tests.services.conftest import Place, order_placed, wait_for

FINAL = {"confirmed", "rejected", "payment_declined", "cancelled"}


def _finals(store: StoreBackend) -> int:
    return sum(n for s, n in store.status_counts().items() if s in FINAL)


async def test_500_concurrent_orders_against_stock_100_confirm_exactly_100(
    services: Supervisor, store: StoreBackend, place: Place
) -> None:
    store.set_stock("sku-dock", 100)
    await services.scale("payment", 2)
    await services.scale("inventory", 3)
    events = [order_placed(f"buyer-{i}", [("sku-dock", 1)]) for i in range(500)]
    await asyncio.gather(*(place(e) for e in events))

    await wait_for(lambda: _finals(store) == 500, within=60, what="500 final orders")
    counts = store.status_counts()
    assert counts == {"confirmed": 100, "cancelled": 400}
    dock = next(p for p in store.list_products() if p.id == "sku-dock")
    assert (dock.stock, dock.reserved) == (0, 100)
    orders, _ = store.list_orders(status="cancelled", limit=1000)
    for o in orders:
        payments = store.order_payments(o.id)
        assert payments["refund"] == payments["charge"] == 19999
    totals = store.payment_totals()
    assert totals["charge"] == 500 * 19999
    assert totals["refund"] == 400 * 19999


async def test_offset_reset_to_earliest_changes_nothing(
    kafka_bootstrap: str,
    services: Supervisor,
    store: StoreBackend,
    place: Place,
    topic_names: TopicNames,
) -> None:
    store.set_stock("sku-webcam", 2)
    events = [
        order_placed("erin", [("sku-webcam", 1)]),
        order_placed("declined-frank"),
        order_placed("gina", [("sku-nope", 1)]),
        order_placed("hank", [("sku-webcam", 1)]),
        order_placed("ivan", [("sku-webcam", 1)]),  # out of stock -> refund
    ]
    for e in events:
        await place(e)
    await wait_for(lambda: _finals(store) == 5, what="5 final orders")
    before = store.effect_counts()
    # Counted after the stop: a worker bumps its counters only once its batch's offsets are
    # committed, which can be a moment after the final status is in the store.
    await services.stop()
    processed = sum(s.processed for s in services.statuses())
    assert processed == 18  # 5 placed, 4 payments + 1 refund, 3 reservations, 5 notifications
    # A clean stop leaves every produced outbox row marked sent (none is sent again later),
    # also those acknowledged while a later batch's transaction was running.
    for name in ("order", "payment", "inventory", "notification"):
        assert store.unsent_outbox(name) == [], name

    for topic in topic_names.pipeline():
        await _commit_earliest(kafka_bootstrap, topic)

    again = Supervisor(KafkaConnection(kafka_bootstrap), store.url, topic_names)
    await again.start()
    try:
        await wait_for(
            lambda: sum(s.duplicates for s in again.statuses()) == processed,
            what=f"{processed} replayed records",
        )
        assert sum(s.processed for s in again.statuses()) == processed
    finally:
        await again.stop()
    assert store.effect_counts() == before
    assert store.status_counts() == {
        "confirmed": 2,
        "payment_declined": 1,
        "rejected": 1,
        "cancelled": 1,
    }


async def _commit_earliest(bootstrap: str, topic: str) -> None:
    """Commit offset 0 for every partition of ``topic`` in its service's group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=topic, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]  # topic_names creates 3 partitions
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def test_legacy_shape_record_is_processed(
    services: Supervisor, store: StoreBackend, producer: EventProducer, topic_names: TopicNames
) -> None:
    order_id = f"legacy-{uuid.uuid4().hex[:8]}"
    legacy = {
        "id": order_id,
        "customerId": "old-client",
        "productId": "sku-usb-hub",
        "quantity": 2,
        "status": "pending",
        "createdAt": "2024-05-01T10:00:00.000Z",
    }
    await producer.send_many(
        [(topic_names.orders, order_id.encode(), json.dumps(legacy).encode(), [])]
    )
    await wait_for(lambda: _status(store, order_id) == "confirmed", what="legacy confirmed")
    order = store.get_order(order_id)
    assert order is not None
    assert order.customerId == "old-client"
    assert order.amountCents == 2 * 2499
    assert len(order.journey) == 4


async def test_unsent_outbox_rows_are_sent_after_restart(
    kafka_bootstrap: str,
    store: StoreBackend,
    place: Place,
    topic_names: TopicNames,
) -> None:
    # The state a crash leaves between "transaction committed" and "outbox produced": the
    # order service has processed OrderPlaced (its offset was never committed) and the
    # PaymentRequested sits unsent in the outbox.
    placed = order_placed("judy", [("sku-headset", 1)])
    await place(placed)
    priced = [PricedLineItem(productId="sku-headset", quantity=1, unitPriceCents=5999)]
    request = PaymentRequested(
        orderId=placed.orderId,
        correlationId=placed.orderId,
        payload=PaymentRequestedPayload(customerId="judy", items=priced, amountCents=5999),
    )
    with store.write() as tx:
        assert tx.consume(
            "order",
            order_id=placed.orderId,
            event_id=placed.eventId,
            event_type="OrderPlaced",
            topic=topic_names.orders,
            partition=0,
            offset=0,
            timestamp_ms=0,
        )
        assert tx.accept_order(placed, priced)
        tx.add_outbox(
            "order",
            topic_names.payments,
            placed.orderId.encode(),
            encode(request),
            headers_for(request),
        )
    assert len(store.unsent_outbox("order")) == 1

    sup = Supervisor(KafkaConnection(kafka_bootstrap), store.url, topic_names)
    await sup.start()
    try:
        await wait_for(lambda: _status(store, placed.orderId) == "confirmed", what="confirmed")
        assert store.unsent_outbox("order") == []
        # The redelivered OrderPlaced is recognised and changes nothing.
        await wait_for(
            lambda: next(s for s in sup.statuses() if s.name == "order").duplicates == 1,
            what="the redelivered OrderPlaced counted as a duplicate",
        )
    finally:
        await sup.stop()
    assert store.order_payments(placed.orderId) == {"charge": 5999}


async def test_replayed_event_is_not_charged_twice(
    services: Supervisor,
    store: StoreBackend,
    place: Place,
    producer: EventProducer,
    topic_names: TopicNames,
) -> None:
    placed = order_placed("kim", [("sku-desk-mat", 3)])
    await place(placed)
    await wait_for(lambda: _status(store, placed.orderId) == "confirmed", what="confirmed")
    # The order's PaymentRequested again under a new event id, then that record verbatim.
    order = store.get_order(placed.orderId)
    assert order is not None
    priced = [PricedLineItem(productId="sku-desk-mat", quantity=3, unitPriceCents=1999)]
    again = PaymentRequested(
        orderId=placed.orderId,
        correlationId=placed.orderId,
        payload=PaymentRequestedPayload(customerId="kim", items=priced, amountCents=3 * 1999),
    )
    await producer.send_event(again, topic_names.payments)
    await producer.send_event(again, topic_names.payments)
    await wait_for(lambda: _processed(services, "payment") >= 3, what="replays consumed")
    assert store.order_payments(placed.orderId) == {"charge": 3 * 1999}
    assert [t for t, _ in store.notifications_for(placed.orderId)] == ["OrderConfirmed"]
    assert _status(store, placed.orderId) == "confirmed"
    assert set(SERVICE_NAMES) == {s.name for s in services.statuses()}


def _processed(sup: Supervisor, name: str) -> int:
    return next(s.processed for s in sup.statuses() if s.name == name)


def _status(store: StoreBackend, order_id: str) -> str | None:
    order = store.get_order(order_id)
    return order.status if order else None
