"""``orderdeck groups reset`` against a real broker, checked with the official tool.

The preview must change nothing; ``--execute`` on a group without members must move the
committed offsets so that ``kafka-consumer-groups --describe`` shows the new ones; a group with
a live member must be refused, naming it, with its offsets left alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from orderdeck.cli import build_parser
from orderdeck.events import TopicNames
from orderdeck.kafka.admin import STABLE, GroupInspector
from orderdeck.kafka.connection import KafkaConnection
from tests.commands.test_groups_cli import official_describe, orderdeck, produce


async def commit_outside_the_group(
    bootstrap: str, group: str, offsets: dict[TopicPartition, int]
) -> None:
    """Commit like a standalone client (assign, no join), leaving the group Empty."""
    committer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await committer.stop()


async def committed_by_tool(bootstrap: str, group: str, topic: str) -> dict[int, str]:
    rows, _ = await official_describe(bootstrap, group)
    return {partition: row[0] for (t, partition), row in rows.items() if t == topic}


async def reset(bootstrap: str, group: str, *args: str) -> dict[int, tuple[int | None, int]]:
    """Run a reset with --json; returns partition -> (current, new) and checks the exit."""
    code, out, err = await orderdeck(bootstrap, "groups", "reset", group, *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["executed"] == ("--execute" in args)
    return {r["partition"]: (r["currentOffset"], r["newOffset"]) for r in result["partitions"]}


async def test_preview_changes_nothing_and_execute_moves_offsets_as_the_tool_sees_them(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.orders
    group = f"{topic_names.prefix}rst-{uuid.uuid4().hex[:6]}"
    await produce(kafka_bootstrap, topic, {0: 7, 1: 4})
    await commit_outside_the_group(
        kafka_bootstrap, group, {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 4}
    )

    # Preview: the plan, and the official tool still sees the old offsets.
    assert await reset(kafka_bootstrap, group, "--to-earliest") == {0: (5, 0), 1: (4, 0)}
    assert await committed_by_tool(kafka_bootstrap, group, topic) == {0: "5", 1: "4"}
    code, out, err = await orderdeck(kafka_bootstrap, "groups", "reset", group, "--to-earliest")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines() if line]
    assert lines[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
    assert lines[1] == [group, topic, "0", "5", "0"]
    assert "Nothing was changed" in err

    # Execute: the tool agrees with the new offsets.
    assert await reset(kafka_bootstrap, group, "--to-earliest", "--execute") == {
        0: (5, 0),
        1: (4, 0),
    }
    assert await committed_by_tool(kafka_bootstrap, group, topic) == {0: "0", 1: "0"}

    # One partition only, shifted; a shift past the log end is clamped to it.
    assert await reset(
        kafka_bootstrap, group, "--shift-by", "3", "--topic", f"{topic}:0", "--execute"
    ) == {0: (0, 3)}
    assert await reset(kafka_bootstrap, group, "--shift-by", "100") == {0: (3, 7), 1: (0, 4)}
    assert await committed_by_tool(kafka_bootstrap, group, topic) == {0: "3", 1: "0"}

    assert await reset(kafka_bootstrap, group, "--to-latest", "--execute") == {0: (3, 7), 1: (0, 4)}
    assert await committed_by_tool(kafka_bootstrap, group, topic) == {0: "7", 1: "4"}


async def test_reset_to_a_time_takes_the_first_record_at_or_after_it(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.payments
    group = f"{topic_names.prefix}rst-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    hour = 3_600_000
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for hours_ago in (3, 2, 1):  # offsets 0, 1, 2 on partition 0
            await producer.send_and_wait(
                topic, b"x", partition=0, timestamp_ms=now_ms - hours_ago * hour
            )
    finally:
        await producer.stop()
    await commit_outside_the_group(kafka_bootstrap, group, {TopicPartition(topic, 0): 3})

    at = datetime.fromtimestamp((now_ms - 2.5 * hour) / 1000, tz=UTC).isoformat()
    assert await reset(kafka_bootstrap, group, "--to-datetime", at) == {0: (3, 1)}
    assert await reset(kafka_bootstrap, group, "--by-duration", "PT90M", "--execute") == {0: (3, 2)}
    assert await committed_by_tool(kafka_bootstrap, group, topic) == {0: "2"}
    # Later than every record: the log end, as with the official tool.
    future = datetime.fromtimestamp(now_ms / 1000 + 60, tz=UTC).isoformat()
    assert await reset(kafka_bootstrap, group, "--to-datetime", future) == {0: (2, 3)}


async def test_a_group_with_a_live_member_is_refused_and_named(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.inventory
    group = f"{topic_names.prefix}rst-{uuid.uuid4().hex[:6]}"
    await produce(kafka_bootstrap, topic, {0: 3})
    await commit_outside_the_group(kafka_bootstrap, group, {TopicPartition(topic, 0): 2})
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        client_id="live-member",
        enable_auto_commit=False,
    )
    await member.start()
    try:
        async with GroupInspector(KafkaConnection(kafka_bootstrap)) as inspector:
            deadline = time.monotonic() + 30
            while True:
                (snap,) = await inspector.describe([group])
                if snap.state == STABLE and snap.members:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"group never settled: {snap}")
                await asyncio.sleep(0.1)
        code, out, err = await orderdeck(
            kafka_bootstrap, "groups", "reset", group, "--to-earliest", "--execute"
        )
        assert code != 0
        assert out == ""
        assert "active member" in err
        assert "live-member" in err
        assert snap.members[0].member_id in err
        assert len(err.strip().splitlines()) == 1
        assert (await committed_by_tool(kafka_bootstrap, group, topic))[0] == "2"
    finally:
        await member.stop()


async def test_an_unknown_group_without_topics_is_a_one_line_error(kafka_bootstrap: str) -> None:
    code, _out, err = await orderdeck(
        kafka_bootstrap, "groups", "reset", f"nope-{uuid.uuid4().hex}", "--to-latest"
    )
    assert code != 0
    assert "no committed offsets" in err
    assert "--topic" in err
    assert len(err.strip().splitlines()) == 1


def test_a_group_named_reset_is_still_described_with_a_double_dash() -> None:
    args = build_parser().parse_args(["groups", "--", "reset"])
    assert args.command == "groups"
    assert args.group == "reset"
