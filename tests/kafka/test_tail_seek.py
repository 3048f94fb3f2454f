"""TopicTail.seek against a real broker, on records whose timestamps the test chose.

Three partitions, five records each, ten seconds apart and interleaved across partitions
(partition p holds base + p*10 s, base + (p+3)*10 s, ...), so a time lands on a different
offset in each partition and the broker's time index (offsets_for_times) is what answers.
"""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaProducer

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.seek_target import SeekOffset, SeekTime
from orderdeck.kafka.tail import TailRecord, TopicTail, UnknownPartitionError

PER_PARTITION = 5
STEP_MS = 10_000


async def produce_timed(bootstrap: str, topic: str) -> int:
    """The 15 records (key ``p<P>-<i>``); returns the base timestamp in ms."""
    base = (int(time.time()) - 3600) * 1000
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(PER_PARTITION):
            for partition in range(3):
                at = base + (i * 3 + partition) * STEP_MS
                await producer.send_and_wait(
                    topic,
                    b'{"n": %d}' % i,
                    key=f"p{partition}-{i}".encode(),
                    partition=partition,
                    timestamp_ms=at,
                )
    finally:
        await producer.stop()
    return base


async def read_until_quiet(tail: TopicTail, within: float = 20.0) -> list[TailRecord]:
    """Every record that arrives until the tail has caught up (fail at the deadline)."""
    records: list[TailRecord] = []
    deadline = time.monotonic() + within
    while True:
        records.extend(await tail.next_batch(max_records=100, timeout_ms=100))
        if await tail.caught_up():
            records.extend(await tail.next_batch(max_records=100, timeout_ms=50))
            return records
        if time.monotonic() > deadline:
            pytest.fail(f"the tail did not catch up in {within} s ({len(records)} records)")


async def test_a_time_starts_each_partition_at_its_first_record_at_or_after_it(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    base = await produce_timed(kafka_bootstrap, topic_names.orders)
    async with TopicTail(kafka_connection, [topic_names.orders]) as tail:
        # base + 35 s: p0's next is at 60 s (offset 2), p1's at 40 s (1), p2's at 50 s (1).
        moved = await tail.seek(SeekTime(base + 35 * 1000))
        topic = topic_names.orders
        assert moved == {(topic, 0): 2, (topic, 1): 1, (topic, 2): 1}
        records = await read_until_quiet(tail)
    assert len(records) == 3 + 4 + 4
    assert min(r.timestamp_ms for r in records) == base + 40_000
    assert {r.key for r in records} >= {"p1-1", "p2-1", "p0-2", "p0-4"}
    assert "p0-1" not in {r.key for r in records}


async def test_an_exact_timestamp_includes_its_record_and_the_future_is_the_end(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    base = await produce_timed(kafka_bootstrap, topic_names.payments)
    topic = topic_names.payments
    async with TopicTail(kafka_connection, [topic], from_beginning=True) as tail:
        moved = await tail.seek(SeekTime(base + 12 * STEP_MS))  # p0's last record
        assert moved == {(topic, 0): 4, (topic, 1): 4, (topic, 2): 4}
        later = await tail.seek(SeekTime(int(time.time() + 3600) * 1000))
        assert later == {(topic, p): PER_PARTITION for p in range(3)}
        assert await read_until_quiet(tail) == []


async def test_an_offset_moves_every_partition_and_stays_inside_the_log(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await produce_timed(kafka_bootstrap, topic_names.inventory)
    topic = topic_names.inventory
    async with TopicTail(kafka_connection, [topic]) as tail:
        assert await tail.seek(SeekOffset(3)) == {(topic, p): 3 for p in range(3)}
        records = await read_until_quiet(tail)
        assert sorted((r.partition, r.offset) for r in records) == [
            (p, o) for p in range(3) for o in (3, 4)
        ]
        assert await tail.seek(SeekOffset(999)) == {(topic, p): PER_PARTITION for p in range(3)}
        assert await read_until_quiet(tail) == []


async def test_partition_colon_offset_moves_only_that_partition(
    kafka_bootstrap: str, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await produce_timed(kafka_bootstrap, topic_names.notifications)
    topic = topic_names.notifications
    async with TopicTail(kafka_connection, [topic]) as tail:
        assert await tail.seek(SeekOffset(1, partition=2)) == {(topic, 2): 1}
        records = await read_until_quiet(tail)
        assert [(r.partition, r.offset) for r in records] == [(2, o) for o in range(1, 5)]
        with pytest.raises(UnknownPartitionError, match=r"partition 7 .*\(partitions 0, 1, 2\)"):
            await tail.seek(SeekOffset(0, partition=7))
