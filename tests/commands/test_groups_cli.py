"""``orderdeck groups`` agrees with Kafka's own ``kafka-consumer-groups --describe``.

Both run against the same broker, one after the other, while nothing produces or commits, and
must agree partition by partition: committed offset, log-end offset, lag and the owning
member's id, host and client id.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from orderdeck.events import TopicNames
from orderdeck.kafka.admin import STABLE, GroupInspector
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import tool_command

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
ToolRow = tuple[str, str, str, str, str, str]  # committed, log-end, lag, member, host, client


async def run(*cmd: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def orderdeck(bootstrap: str, *args: str) -> tuple[int, str, str]:
    return await run(
        sys.executable,
        "-m",
        "orderdeck.cli",
        *args,
        env={"ORDERDECK_BOOTSTRAP_SERVERS": bootstrap},
    )


async def official_describe(
    bootstrap: str, group: str
) -> tuple[dict[tuple[str, int], ToolRow], str]:
    """The tool's rows keyed by (topic, partition), and its stderr."""
    code, out, err = await run(
        *tool_command(
            CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", group
        )
    )
    assert code == 0, err
    rows: dict[tuple[str, int], ToolRow] = {}
    for line in out.splitlines():
        fields = line.split()
        if not fields or fields[0] != group:
            continue  # blank lines and the header
        assert len(fields) == 9, line
        _, topic, partition, *rest = fields
        rows[(topic, int(partition))] = tuple(rest)  # type: ignore[assignment]
    return rows, err


def ours_as_tool_rows(group_json: dict[str, Any]) -> dict[tuple[str, int], ToolRow]:
    def cell(value: object) -> str:
        return "-" if value is None else str(value)

    return {
        (p["topic"], p["partition"]): (
            cell(p["committed"]),
            cell(p["logEnd"]),
            cell(p["lag"]),
            cell(p["memberId"]),
            cell(p["host"]),
            cell(p["clientId"]),
        )
        for p in group_json["partitions"]
    }


async def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                await producer.send(topic, b"x", key=str(i).encode(), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def test_groups_json_matches_the_official_tool_for_a_live_and_an_empty_group(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.orders
    group = f"{topic_names.prefix}cmp-{uuid.uuid4().hex[:6]}"
    await produce(kafka_bootstrap, topic, {0: 7, 1: 4, 2: 2})
    consumers = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            client_id=f"cmp-{i}",
            enable_auto_commit=False,
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(*(c.start() for c in consumers))
        async with GroupInspector(KafkaConnection(kafka_bootstrap)) as inspector:
            deadline = time.monotonic() + 30
            while True:
                (snap,) = await inspector.describe([group])
                one_each = all(len(m.assignments) == 1 for m in snap.members)
                if snap.state == STABLE and len(snap.members) == 3 and one_each:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"group never settled: {snap}")
                await asyncio.sleep(0.1)
        # Two partitions get commits (one lagging, one caught up); the third stays uncommitted,
        # which the tool shows as '-' for CURRENT-OFFSET and LAG.
        committed = {0: 3, 1: 4}
        for consumer in consumers:
            (tp,) = consumer.assignment()
            if tp.partition in committed:
                await consumer.commit({tp: OffsetAndMetadata(committed[tp.partition], "")})

        code, out, err = await orderdeck(
            kafka_bootstrap, "groups", group, "--json", "--window", "0"
        )
        assert code == 0, err
        (live,) = json.loads(out)
        official, _ = await official_describe(kafka_bootstrap, group)
        assert live["state"] == "Stable"
        assert len(live["members"]) == 3
        assert ours_as_tool_rows(live) == official
        assert official[(topic, 0)][:3] == ("3", "7", "4")
        assert official[(topic, 2)][:3] == ("-", "2", "-")
        assert live["totalLag"] == 4
    finally:
        for consumer in consumers:
            await consumer.stop()

    # The members left: an Empty group, rows only for committed partitions, no owner.
    code, out, err = await orderdeck(kafka_bootstrap, "groups", group, "--json", "--window", "0")
    assert code == 0, err
    (empty,) = json.loads(out)
    official, tool_err = await official_describe(kafka_bootstrap, group)
    assert empty["state"] == "Empty"
    assert empty["members"] == []
    assert "has no active members" in tool_err
    assert ours_as_tool_rows(empty) == official
    assert set(official) == {(topic, 0), (topic, 1)}


async def test_table_has_the_tool_columns_and_notes_an_empty_group(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.payments
    group = f"{topic_names.prefix}tbl-{uuid.uuid4().hex[:6]}"
    await produce(kafka_bootstrap, topic, {1: 5})
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        tp = TopicPartition(topic, 1)
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(2, "")})
    finally:
        await committer.stop()
    code, out, err = await orderdeck(kafka_bootstrap, "groups", group)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line]
    assert lines[0].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    assert lines[1].split() == [group, topic, "1", "2", "5", "3", "-", "-", "-"]
    assert f"Consumer group '{group}' has no active members." in err


async def test_an_unknown_group_is_a_one_line_error(kafka_bootstrap: str) -> None:
    code, out, err = await orderdeck(kafka_bootstrap, "groups", f"nope-{uuid.uuid4().hex}")
    assert code == 1
    assert out == ""
    assert err.startswith("orderdeck: error: consumer group")
    assert err.count("\n") == 1


async def test_without_a_running_local_kafka_the_error_says_what_to_do(tmp_path: Any) -> None:
    code, _, err = await run(
        sys.executable,
        "-m",
        "orderdeck.cli",
        "groups",
        "--data-dir",
        str(tmp_path),
        env={"ORDERDECK_BOOTSTRAP_SERVERS": ""},
    )
    assert code == 1
    assert "local Kafka is not running; start it with `orderdeck kafka start`" in err
    assert "Traceback" not in err
