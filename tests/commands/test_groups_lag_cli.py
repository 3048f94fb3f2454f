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

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from orderdeck.cli import build_parser
from orderdeck.commands.groups_lag import LAG_TIME_COLUMNS, _record_ages, duration
from orderdeck.events import TopicNames
from orderdeck.kafka.admin import GroupInspector
from orderdeck.kafka.connection import KafkaConnection
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
    code, out, err = await orderdeck(kafka_bootstrap, "groups", group, "--json", "--window", "0")
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
    # partition 2 lags too, but nothing is written to it during the window: no log-end movement
    # to interpolate in, so its lag time falls back to the record's timestamp
    await produce(kafka_bootstrap, topic, 2, 3, age=AGE)
    await commit(kafka_bootstrap, group, {TopicPartition(topic, 2): 1})
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
    lagging, caught_up, still = parts[0], parts[1], parts[2]
    assert lagging["lag"] > 3  # the writer kept adding while nobody consumed
    assert lagging["lagSecondsFrom"] == "window"
    assert lagging["lagSeconds"] > 0
    assert lagging["verdict"] == "STALL"  # offset unchanged while the lag grows
    assert lagging["drainState"] == "not draining"
    assert lagging["drainSeconds"] is None
    assert caught_up["lagSeconds"] == 0
    assert caught_up["lagSecondsFrom"] == "window"
    assert caught_up["verdict"] == "OK"
    assert still["lag"] == 2
    assert still["lagSecondsFrom"] == "record-timestamp"
    assert still["lagSeconds"] >= AGE - 1
    assert still["verdict"] == "STALL"
    assert shaped["verdict"] == "ERR"
    assert shaped["lagSecondsFrom"] == "record-timestamp+window"
    assert shaped["drainState"] == "not draining"
    assert shaped["lagSeconds"] == max(lagging["lagSeconds"], still["lagSeconds"])


async def test_lag_time_table_adds_three_columns_and_says_how_it_measured(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic, group = await lagging_and_caught_up_group(kafka_bootstrap, topic_names)
    code, out, err = await orderdeck(
        kafka_bootstrap, "groups", group, "--lag-time", "--window", "0"
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if line]
    assert lines[0].split() == list(LAG_TIME_COLUMNS)
    rows = {fields[2]: fields for fields in (line.split() for line in lines[1:])}
    assert rows["0"][:6] == [group, topic, "0", "2", "5", "3"]
    lag_time_cell = rows["0"][6]  # "30.4s", or "1m02s" on a very slow machine
    assert lag_time_cell.endswith("s")
    assert "m" in lag_time_cell or float(lag_time_cell.rstrip("s")) >= AGE - 1
    assert rows["0"][7:9] == ["-", "UNKNOWN"]
    assert rows["1"][3:9] == ["4", "4", "0", "0.0s", "0.0s", "OK"]
    assert "lag time from the timestamps of the records at the committed offsets" in err


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.0, "0.0s"), (4.25, "4.2s"), (185.0, "3m05s"), (7260.0, "2h01m")],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


async def test_groups_at_different_offsets_of_one_partition_each_get_their_records_age(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.orders
    tp = TopicPartition(topic, 0)
    await produce(kafka_bootstrap, topic, 0, 3, age=2 * AGE)
    await produce(kafka_bootstrap, topic, 0, 3, age=AGE)
    old, new = (f"{topic_names.prefix}{name}-{uuid.uuid4().hex[:6]}" for name in ("old", "new"))
    await commit(kafka_bootstrap, old, {tp: 1})  # waiting at a record 60 s old
    await commit(kafka_bootstrap, new, {tp: 4})  # waiting at a record 30 s old
    kafka = KafkaConnection(kafka_bootstrap)
    async with GroupInspector(kafka) as inspector:
        snapshots = await inspector.describe([old, new])
    ages = await _record_ages(kafka, snapshots, {})
    assert 2 * AGE - 1 <= ages[(old, topic, 0)] <= 2 * AGE + 60
    assert AGE - 1 <= ages[(new, topic, 0)] <= AGE + 60
    assert ages[(old, topic, 0)] - ages[(new, topic, 0)] >= AGE - 1


def test_the_window_defaults_to_five_seconds_and_zero_means_one_look() -> None:
    parser = build_parser()
    assert parser.parse_args(["groups", "--json"]).window == 5.0
    assert parser.parse_args(["groups", "--json", "--window", "0"]).window == 0.0
