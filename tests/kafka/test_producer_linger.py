"""The API's single events linger for company only when company is likely.

A wait of ``linger_s`` lets concurrent orders share one produce request, which is what a
request costs the broker; but at 100 orders/s a 3 ms wait gathers 0.3 of an order, so it
was latency that saved nothing. The producer now waits only while the recent arrival rate
makes the wait gather at least half an event on average. Real Kafka for the sends.
"""

from __future__ import annotations

import asyncio
import time

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from tests.services.conftest import order_placed

#: Exaggerated so that a wait shows beside a local broker's ack (a few ms); then a slow pace
#: is under 1 / LINGER_S events per second.
LINGER_S = 0.2


async def test_a_slow_pace_is_sent_at_once_and_a_fast_one_waits_for_company(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    producer = EventProducer(kafka_connection, client_suffix="test-linger", linger_s=LINGER_S)
    await producer.start()
    try:
        topic = topic_names.orders
        slow: list[float] = []
        for _ in range(6):  # 2 events/s: a 200 ms wait would gather 0.4 of an event
            began = time.monotonic()
            await producer.send_event(order_placed(), topic)
            slow.append(time.monotonic() - began)
            await asyncio.sleep(0.5)
        assert max(slow) < LINGER_S / 2, slow
        assert not producer.linger_due()

        # 40 at once, 0.3 s apart (over LINGER_RATE_WINDOW_S): 133 per second, so they wait.
        for _ in range(2):
            await asyncio.gather(*(producer.send_event(order_placed(), topic) for _ in range(40)))
            await asyncio.sleep(0.3)
        assert producer.linger_due(), producer.arrival_rate
        began = time.monotonic()
        deliveries = await asyncio.gather(
            *(producer.send_event(order_placed(), topic) for _ in range(40))
        )
        assert time.monotonic() - began >= LINGER_S
        # They shared record batches: consecutive offsets within each partition.
        by_partition: dict[int, list[int]] = {}
        for delivery in deliveries:
            by_partition.setdefault(delivery.partition, []).append(delivery.offset)
        for offsets in by_partition.values():
            assert sorted(offsets) == list(range(min(offsets), min(offsets) + len(offsets)))
    finally:
        await producer.stop()
