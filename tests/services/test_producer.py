"""The shared producer: acks, the memoised partitioner, batched sends in order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from orderdeck.events import TopicNames
from orderdeck.kafka.producer import PARTITIONER, EventProducer, RawRecord
from tests.services.conftest import order_placed


def test_partitioner_matches_kafkas_default_for_keys() -> None:
    default = DefaultPartitioner()
    for _ in range(500):
        key = str(uuid.uuid4()).encode()
        for n in (1, 3, 7):
            partitions = list(range(n))
            assert PARTITIONER(key, partitions, partitions) == default(key, partitions, partitions)
            assert PARTITIONER(key, partitions, partitions) == default(key, partitions, partitions)
    assert PARTITIONER(None, [0, 1, 2], [0, 1, 2]) in {0, 1, 2}


async def _read(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        async with asyncio.timeout(15):
            while len(records) < expected:
                for recs in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def test_send_event_waits_for_the_ack_and_says_where(
    kafka_bootstrap: str, producer: EventProducer, topic_names: TopicNames
) -> None:
    event = order_placed("pat")
    delivery = await producer.send_event(event, topic_names.orders, timeout=10)
    assert delivery.topic == topic_names.orders
    assert delivery.partition == PARTITIONER(event.orderId.encode(), [0, 1, 2], [0, 1, 2])
    assert delivery.offset >= 0
    assert delivery.timestamp_ms > 0
    [record] = await _read(kafka_bootstrap, topic_names.orders, 1)
    assert (record.partition, record.offset) == (delivery.partition, delivery.offset)
    assert dict(record.headers)["event-type"] == b"OrderPlaced"


async def test_send_many_keeps_key_order_and_partitions(
    kafka_bootstrap: str, producer: EventProducer, topic_names: TopicNames
) -> None:
    keys = [f"k{i}".encode() for i in range(5)]
    records: list[RawRecord] = [
        (topic_names.payments, keys[i % 5], str(i).encode(), [("n", str(i).encode())])
        for i in range(300)
    ]
    records.append((topic_names.payments, None, b"keyless", []))
    await producer.send_many(records)
    got = await _read(kafka_bootstrap, topic_names.payments, 301)
    assert len(got) == 301
    for key in keys:
        mine = sorted((r for r in got if r.key == key), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1
        assert mine[0].partition == PARTITIONER(key, [0, 1, 2], [0, 1, 2])
        values = [int(r.value) for r in mine]
        assert values == sorted(values)  # produced order is kept within the key
    assert any(r.key is None and r.value == b"keyless" for r in got)


async def test_concurrent_events_share_batches_and_each_learns_its_own_offset(
    kafka_bootstrap: str, producer: EventProducer, topic_names: TopicNames
) -> None:
    # Big enough that they fill more than one 256 KiB record batch per partition.
    events = [order_placed(f"c{i}-" + "x" * 100) for i in range(40)]
    padding = [("pad", b"p" * 30_000)]
    sends = [
        producer.send_record(
            topic_names.orders, e.orderId.encode(), e.model_dump_json().encode(), padding
        )
        for e in events
    ]
    deliveries = await asyncio.wait_for(asyncio.gather(*sends), 20)
    got = await _read(kafka_bootstrap, topic_names.orders, len(events))
    where = {(r.partition, r.offset): r.key for r in got}
    for event, delivery in zip(events, deliveries, strict=True):
        assert where[(delivery.partition, delivery.offset)] == event.orderId.encode()
        assert delivery.timestamp_ms > 0
    per_partition = [sum(1 for d in deliveries if d.partition == p) for p in range(3)]
    assert max(per_partition) * 30_000 > 256 * 1024  # some partition needed a second batch


async def test_an_event_whose_caller_gave_up_is_not_sent(
    kafka_bootstrap: str, producer: EventProducer, topic_names: TopicNames
) -> None:
    gone, kept = order_placed("gone"), order_placed("kept")
    abandoned = asyncio.ensure_future(producer.send_event(gone, topic_names.notifications))
    await asyncio.sleep(0)  # it runs up to waiting for its ack: the record is queued
    assert not abandoned.done()
    abandoned.cancel()  # as a timed-out send_event does, before the batch is shipped
    delivery = await producer.send_event(kept, topic_names.notifications, timeout=10)
    [record] = await _read(kafka_bootstrap, topic_names.notifications, 1)
    assert (record.key, record.offset) == (kept.orderId.encode(), delivery.offset)
    # Both would have gone out in the same produce request: the topic holds one record.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(
            [TopicPartition(topic_names.notifications, p) for p in range(3)]
        )
    finally:
        await consumer.stop()
    assert sum(ends.values()) == 1
