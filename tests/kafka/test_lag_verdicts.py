"""Verdicts and drain state from ``groups --json --window`` with real consumers committing.

Each test runs a real consumer (or committer) in the background while the CLI samples the
group for a few seconds: one that drains a backlog (OK, draining), one slower than its producer
(WARN, not draining), and offsets reset backwards (REWIND). A stalled partition and a caught-up
one are covered in tests/commands/test_groups_lag_cli.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from orderdeck.events import TopicNames
from tests.commands.test_groups_cli import orderdeck
from tests.commands.test_groups_lag_cli import produce

WINDOW = "4"


async def sample_while(
    bootstrap: str, group: str, *background: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Partition 0 of ``groups GROUP --json --window`` taken while ``background`` runs."""
    tasks = [asyncio.create_task(job()) for job in background]
    try:
        code, out, err = await orderdeck(bootstrap, "groups", group, "--json", "--window", WINDOW)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert code == 0, err
    (shaped,) = json.loads(out)
    (part,) = [p for p in shaped["partitions"] if p["partition"] == 0]
    return part


async def slow_consumer(bootstrap: str, topic: str, group: str, pause: float) -> None:
    """Consume partition 0 one record at a time, committing each, ``pause`` s apart."""
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while True:
            record = await consumer.getone(tp)
            await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
            await asyncio.sleep(pause)
    finally:
        await consumer.stop()


async def steady_producer(bootstrap: str, topic: str, pause: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        while True:
            await producer.send_and_wait(topic, b"x", partition=0)
            await asyncio.sleep(pause)
    finally:
        await producer.stop()


def group_name(names: TopicNames) -> str:
    return f"{names.prefix}verdict-{uuid.uuid4().hex[:6]}"


async def test_a_consumer_working_off_a_backlog_is_ok_and_draining(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = topic_names.orders, group_name(topic_names)
    await produce(kafka_bootstrap, topic, 0, 400, age=5.0)
    part = await sample_while(
        kafka_bootstrap,
        group,
        lambda: steady_producer(kafka_bootstrap, topic, pause=0.5),  # 2/s in
        lambda: slow_consumer(kafka_bootstrap, topic, group, pause=0.02),  # up to 50/s out
    )
    assert part["lag"] > 0
    assert part["lagSecondsFrom"] == "window"
    assert part["lagSeconds"] > 0
    assert part["verdict"] == "OK"
    assert part["drainState"] == "draining"
    assert part["drainSeconds"] > 0


async def test_a_consumer_slower_than_its_producer_is_warn_and_not_draining(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = topic_names.orders, group_name(topic_names)
    await produce(kafka_bootstrap, topic, 0, 20, age=5.0)
    part = await sample_while(
        kafka_bootstrap,
        group,
        lambda: steady_producer(kafka_bootstrap, topic, pause=0.02),  # up to 50/s in
        lambda: slow_consumer(kafka_bootstrap, topic, group, pause=0.5),  # 2/s out
    )
    assert part["lag"] > 0
    assert part["lagSecondsFrom"] == "window"
    assert part["verdict"] == "WARN"
    assert part["drainState"] == "not draining"
    assert part["drainSeconds"] is None


async def test_offsets_moved_backwards_are_a_rewind(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = topic_names.orders, group_name(topic_names)
    tp = TopicPartition(topic, 0)
    await produce(kafka_bootstrap, topic, 0, 100, age=5.0)
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    committer.assign([tp])
    await committer.commit({tp: OffsetAndMetadata(90, "")})

    async def rewind() -> None:
        for offset in range(89, 0, -1):  # a reset walking backwards, one offset at a time
            await committer.commit({tp: OffsetAndMetadata(offset, "")})
            await asyncio.sleep(0.2)

    try:
        part = await sample_while(kafka_bootstrap, group, rewind)
    finally:
        await committer.stop()
    assert part["verdict"] == "REWIND"
    # the log end stood still, so there was no rate to interpolate with: the record's own age
    assert part["lagSecondsFrom"] == "record-timestamp"
    assert part["lagSeconds"] >= 4
