"""Poison records go to their topic's DLQ with the reason in headers; the partition moves on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderdeck.events import ORDER_EVENTS, OrderPlaced, TopicNames, dlq_topic, header_value
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.services import Service
from orderdeck.services.order import OrderService
from orderdeck.services.supervisor import Supervisor
from orderdeck.services.worker import ServiceWorker
from orderdeck.store import StoreBackend, StoreURL, WriteTx
from tests.services.conftest import Place, order_placed, wait_for


async def _read_all(bootstrap: str, topic: str, expected: int, within: float = 15.0) -> list[Any]:
    """Every record of ``topic`` (group-less), once ``expected`` of them are there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        async with asyncio.timeout(within):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for recs in batch.values():
                    records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_poison_record_on_each_topic_goes_to_its_dlq(
    kafka_bootstrap: str,
    services: Supervisor,
    store: StoreBackend,
    place: Place,
    producer: EventProducer,
    topic_names: TopicNames,
) -> None:
    good = order_placed("leo", [("sku-cable", 1)])
    key = good.orderId.encode()  # same key -> same partition as the good order's records
    poison: dict[str, tuple[bytes, str]] = {
        topic_names.orders: (b"{not json", "not JSON"),
        topic_names.payments: (json.dumps({"type": "Teleport"}).encode(), "unknown event type"),
        topic_names.inventory: (
            good.model_dump_json().encode(),
            "does not belong in",
        ),
        topic_names.notifications: (
            json.dumps({"type": "OrderConfirmed", "orderId": "x"}).encode(),
            "invalid OrderConfirmed",
        ),
    }
    for topic, (value, _) in poison.items():
        await producer.send_many([(topic, key, value, [("trace", b"abc")])])
    await place(good)
    await wait_for(lambda: _status(store, good.orderId) == "confirmed", what="good order confirmed")

    for topic, (value, reason) in poison.items():
        [record] = await _read_all(kafka_bootstrap, dlq_topic(topic), 1)
        assert record.key == key
        assert record.value == value
        headers = record.headers
        assert reason in (header_value(headers, "dlq-reason") or "")
        assert header_value(headers, "dlq-original-topic") == topic
        assert header_value(headers, "dlq-original-partition") is not None
        assert int(header_value(headers, "dlq-original-offset") or -1) >= 0
        assert header_value(headers, "dlq-service") in {
            "order",
            "payment",
            "inventory",
            "notification",
        }
        assert header_value(headers, "trace") == "abc"  # original headers are kept
    # Counters move once a batch's offsets are committed, a moment after its effects.
    await wait_for(
        lambda: sum(s.dead_letters for s in services.statuses()) == 4, what="4 dead letters"
    )
    failures = services.recent_failures()
    assert {f.topic for f in failures} == set(poison)
    assert all(f.dead_lettered for f in failures)


class _FailsForOne(Service):
    """An order service whose handler always fails for one order id."""

    name = "order"
    inbox = ORDER_EVENTS
    accepts = frozenset({"OrderPlaced"})

    def __init__(self, bad_order: str) -> None:
        self.bad_order = bad_order
        self.calls: dict[str, int] = {}
        self._real = OrderService()

    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        self.calls[event.orderId] = self.calls.get(event.orderId, 0) + 1
        if event.orderId == self.bad_order:
            tx.set_status(event.orderId, "pending")  # rolled back with the savepoint
            raise RuntimeError("boom")
        return self._real.handle(tx, event)


async def test_handler_failing_three_times_is_dead_lettered_and_the_batch_goes_on(
    kafka_bootstrap: str,
    store_url: StoreURL,
    store: StoreBackend,
    place: Place,
    topic_names: TopicNames,
) -> None:
    events: list[OrderPlaced] = [order_placed(f"m-{i}") for i in range(5)]
    bad = events[2]
    for e in events:
        await place(e)
    service = _FailsForOne(bad.orderId)
    worker = ServiceWorker(
        service, kafka=KafkaConnection(kafka_bootstrap), store_path=store_url, names=topic_names
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(
            lambda: worker.counters.processed + worker.counters.dead_letters == 5,
            what="5 records handled",
        )
    finally:
        worker.request_stop()
        await task
    assert service.calls[bad.orderId] == 3
    assert worker.counters.dead_letters == 1
    assert worker.counters.errors == 3
    assert _status(store, bad.orderId) == "placed"  # its partial work was rolled back
    for e in events:
        if e is not bad:
            assert _status(store, e.orderId) == "pending"
    [record] = await _read_all(kafka_bootstrap, dlq_topic(topic_names.orders), 1)
    assert "handler failed 3 times: RuntimeError: boom" in (
        header_value(record.headers, "dlq-reason") or ""
    )


def _status(store: StoreBackend, order_id: str) -> str | None:
    order = store.get_order(order_id)
    return order.status if order else None
