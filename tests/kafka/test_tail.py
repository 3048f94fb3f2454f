"""TopicTail against a real broker, and how a TailRecord reads a record."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from orderdeck.events import (
    LegacyOrder,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    TopicNames,
    encode,
    headers_for,
)
from orderdeck.kafka.admin import GroupInspector
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.tail import TailRecord, TopicTail, UnknownTopicError


def consumer_record(
    value: bytes,
    key: bytes | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=1,
        offset=42,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=headers,
    )


def placed(order_id: str) -> OrderPlaced:
    return OrderPlaced(
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(customerId="c-1", items=[LineItem(productId="p-1", quantity=2)]),
    )


# ----------------------------------------------------------------------------- TailRecord


def test_type_comes_from_the_header_and_order_id_from_the_key() -> None:
    event = placed("o-1")
    record = TailRecord.from_consumer_record(
        consumer_record(b"not even json", key=b"o-1", headers=tuple(headers_for(event)))
    )
    assert (record.event_type, record.order_id, record.key) == ("OrderPlaced", "o-1", "o-1")
    assert (record.topic, record.partition, record.offset) == ("t", 1, 42)


def test_without_header_or_key_the_json_value_is_read() -> None:
    event = placed("o-2")
    record = TailRecord.from_consumer_record(consumer_record(encode(event)))
    assert (record.event_type, record.order_id, record.key) == ("OrderPlaced", "o-2", None)


def test_a_legacy_order_is_found_by_its_id() -> None:
    legacy = LegacyOrder(id="legacy-7", customerId="c", productId="p", quantity=1)
    record = TailRecord.from_consumer_record(consumer_record(legacy.model_dump_json().encode()))
    assert (record.event_type, record.order_id) == (None, "legacy-7")


def test_pretty_json_and_json_dict() -> None:
    event = placed("o-3")
    record = TailRecord.from_consumer_record(
        consumer_record(encode(event), key=b"o-3", headers=tuple(headers_for(event)))
    )
    assert json.loads(record.pretty_json()) == json.loads(encode(event))
    assert "\n  " in record.pretty_json()
    as_dict = record.to_json_dict()
    assert as_dict["value"]["orderId"] == "o-3"
    assert as_dict["headers"]["event-type"] == "OrderPlaced"
    assert (as_dict["type"], as_dict["orderId"], as_dict["timestamp"]) == (
        "OrderPlaced",
        "o-3",
        1_700_000_000_000,
    )


def test_values_that_are_not_json_stay_text() -> None:
    record = TailRecord.from_consumer_record(consumer_record(b"\xffplain"))
    assert record.pretty_json() == "\ufffdplain"
    assert record.to_json_dict()["value"] == "\ufffdplain"
    assert (record.event_type, record.order_id) == (None, None)


# ----------------------------------------------------------------------------- broker


async def produce_events(bootstrap: str, topic: str, order_ids: list[str]) -> dict[str, int]:
    """Produce one OrderPlaced per order id; returns order id -> partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for order_id in order_ids:
            event = placed(order_id)
            futures.append(
                await producer.send(
                    topic, encode(event), key=order_id.encode(), headers=headers_for(event)
                )
            )
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {oid: md.partition for oid, md in zip(order_ids, metadata, strict=True)}


async def drain(tail: TopicTail, expected: int, within: float = 20.0) -> list[TailRecord]:
    """Read until ``expected`` records arrived (fail at the deadline)."""
    records: list[TailRecord] = []
    deadline = time.monotonic() + within
    while len(records) < expected:
        if time.monotonic() > deadline:
            pytest.fail(f"tail returned {len(records)} of {expected} records in {within} s")
        records.extend(await tail.next_batch(max_records=100, timeout_ms=200))
    return records


async def test_from_beginning_reads_every_record_in_partition_order(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    orders = [f"o-{i}" for i in range(60)]
    partitions = await produce_events(kafka_bootstrap, topic_names.orders, orders)
    async with TopicTail(kafka_connection, [topic_names.orders], from_beginning=True) as tail:
        assert tail.partitions == tuple((topic_names.orders, p) for p in range(3))
        records = await drain(tail, len(orders))
        assert await tail.caught_up()
        assert await tail.next_batch(timeout_ms=100) == []
    assert sorted(r.order_id or "" for r in records) == sorted(orders)
    for record in records:
        assert record.partition == partitions[record.order_id or ""]
        assert record.event_type == "OrderPlaced"
    for partition in range(3):
        in_partition = [r for r in records if r.partition == partition]
        assert [r.offset for r in in_partition] == list(range(len(in_partition)))
        # the producer's order survives within a partition
        produced = [o for o in orders if partitions[o] == partition]
        assert [r.order_id for r in in_partition] == produced


async def test_batches_are_bounded(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await produce_events(kafka_bootstrap, topic_names.orders, [f"b-{i}" for i in range(50)])
    async with TopicTail(kafka_connection, [topic_names.orders], from_beginning=True) as tail:
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 50 and time.monotonic() < deadline:
            batch = await tail.next_batch(max_records=7, timeout_ms=200)
            assert len(batch) <= 7
            seen += len(batch)
        assert seen == 50


async def test_from_the_end_only_new_records_arrive(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await produce_events(kafka_bootstrap, topic_names.payments, ["old-1", "old-2", "old-3"])
    async with TopicTail(kafka_connection, [topic_names.payments]) as tail:
        assert await tail.caught_up()
        await produce_events(kafka_bootstrap, topic_names.payments, ["new-1", "new-2"])
        records = await drain(tail, 2)
        assert sorted(r.order_id or "" for r in records) == ["new-1", "new-2"]
        assert await tail.caught_up()


async def test_caught_up_is_false_while_records_are_waiting(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await produce_events(kafka_bootstrap, topic_names.inventory, [f"w-{i}" for i in range(10)])
    async with TopicTail(kafka_connection, [topic_names.inventory], from_beginning=True) as tail:
        assert not await tail.caught_up()
        assert await tail.lag() == 10
        await drain(tail, 10)
        assert await tail.caught_up()
        assert await tail.lag() == 0


async def test_the_tail_never_joins_a_consumer_group(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    client_suffix = f"tail-probe-{uuid.uuid4().hex[:8]}"
    client_id = f"orderdeck-{client_suffix}"
    await produce_events(kafka_bootstrap, topic_names.orders, ["g-1", "g-2"])
    async with GroupInspector(kafka_connection) as inspector:
        before = set(await inspector.list_groups())
        async with TopicTail(
            kafka_connection, topic_names.all(), from_beginning=True, client_suffix=client_suffix
        ) as tail:
            await drain(tail, 2)
            during = set(await inspector.list_groups())
            snapshots = await inspector.describe(sorted(during))
        after = set(await inspector.list_groups())
    # no member of any group is the tail, and no group appeared for our topics
    assert not [s.group for s in snapshots if any(m.client_id == client_id for m in s.members)]
    for new_group in (during | after) - before:
        assert not new_group.startswith(topic_names.prefix)
        assert not new_group.startswith(client_id)


async def test_unknown_topic_is_a_clear_error_and_is_not_created(
    kafka_bootstrap: str, kafka_connection: KafkaConnection
) -> None:
    missing = f"missing-{uuid.uuid4().hex}"
    tail = TopicTail(kafka_connection, [missing])
    with pytest.raises(UnknownTopicError, match=missing):
        await tail.start()
    await tail.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()
