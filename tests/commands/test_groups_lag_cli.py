"""``orderdeck groups --json`` tells lag in seconds, time to drain and a verdict per partition.

Real broker, real commits: one partition lags behind records of a known age, another is caught
up. The one-shot run dates the lag by the record at the committed offset; ``--window`` samples
the log end while a producer keeps writing and dates it from those samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from orderdeck.events import TopicNames
from tests.commands.test_groups_cli import orderdeck

AGE = 30.0  # seconds: how old the lagging partition's records are made to look


async def produce(bootstrap: str, topic: str, partition: int, count: int, age: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        stamp = int((time.time() - age) * 1000)
        for i in range(count):
            await producer.send(topic, b"x", partition=partition, timestamp_ms=stamp + i)
        await producer.flush()
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    committer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await committer.stop()


async def lagging_and_caught_up_group(bootstrap: str, names: TopicNames) -> tuple[str, str]:
    topic = names.orders
    group = f"{names.prefix}lagtime-{uuid.uuid4().hex[:6]}"
    await produce(bootstrap, topic, 0, 5, age=AGE)
    await produce(bootstrap, topic, 1, 4, age=0.0)
    await commit(bootstrap, group, {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 4})
    return topic, group


async def test_one_shot_lag_seconds_from_the_record_at_the_committed_offset(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = await lagging_and_caught_up_group(kafka_bootstrap, topic_names)
    code, out, err = await orderdeck(kafka_bootstrap, "groups", group, "--json")
    assert code == 0, err
    (shaped,) = json.loads(out)
    parts = {p["partition"]: p for p in shaped["partitions"]}
    lagging, caught_up = parts[0], parts[1]
    assert lagging["lag"] == 3
    assert lagging["lagSecondsFrom"] == "record-timestamp"
    assert AGE - 1 <= lagging["lagSeconds"] <= AGE + 60
    assert lagging["verdict"] == "UNKNOWN"  # one look cannot tell a stall from progress
    assert lagging["drainState"] == "unknown"
    assert caught_up["lag"] == 0
    assert caught_up["lagSeconds"] == 0
    assert caught_up["drainSeconds"] == 0
    assert caught_up["drainState"] == "caught up"
    assert caught_up["verdict"] == "OK"
    assert shaped["lagSeconds"] == lagging["lagSeconds"]
    assert shaped["lagSecondsFrom"] == "record-timestamp"
    assert shaped["verdict"] == "UNKNOWN"
    assert all(p["topic"] == topic for p in shaped["partitions"])


async def test_window_dates_lag_from_log_end_samples_and_calls_a_stuck_group_stalled(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = await lagging_and_caught_up_group(kafka_bootstrap, topic_names)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1)
    await producer.start()

    async def keep_writing() -> None:
        while True:
            await producer.send_and_wait(topic, b"x", partition=0)
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(keep_writing())
    try:
        code, out, err = await orderdeck(
            kafka_bootstrap, "groups", group, "--json", "--window", "3"
        )
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await producer.stop()
    assert code == 0, err
    (shaped,) = json.loads(out)
    parts = {p["partition"]: p for p in shaped["partitions"]}
    lagging, caught_up = parts[0], parts[1]
    assert lagging["lag"] > 3  # the writer kept adding while nobody consumed
    assert lagging["lagSecondsFrom"] == "window"
    assert lagging["lagSeconds"] > 0
    assert lagging["verdict"] == "STALL"  # offset unchanged while the lag grows
    assert lagging["drainState"] == "not draining"
    assert lagging["drainSeconds"] is None
    assert caught_up["lagSeconds"] == 0
    assert caught_up["lagSecondsFrom"] == "window"
    assert caught_up["verdict"] == "OK"
    assert shaped["verdict"] == "ERR"
    assert shaped["drainState"] == "not draining"
    assert shaped["lagSeconds"] == lagging["lagSeconds"]
