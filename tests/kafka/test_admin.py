"""GroupInspector against a real broker, and the consumer-protocol assignment decoder."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from orderdeck.events import TopicNames
from orderdeck.kafka.admin import (
    DEAD,
    STABLE,
    AssignmentDecodeError,
    GroupInspector,
    GroupMember,
    GroupSnapshot,
    build_rows,
    decode_assignment,
    encode_assignment,
)
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import LocalKafka
from tests.api.serve_process import free_port

# ----------------------------------------------------------------------------- decoding

#: Bytes aiokafka 0.14 really sent as a member assignment (captured from DescribeGroups).
AIOKAFKA_ASSIGNMENT = (
    b"\x00\x00\x00\x00\x00\x01\x00\x04exp1\x00\x00\x00\x03"
    b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00"
)


def test_decodes_assignment_bytes_written_by_aiokafka() -> None:
    assert decode_assignment(AIOKAFKA_ASSIGNMENT) == (("exp1", 0), ("exp1", 1), ("exp1", 2))


@pytest.mark.parametrize("version", [0, 1, 2, 3])
@pytest.mark.parametrize("user_data", [None, b"", b"\x01\x02sticky"])
def test_every_assignment_version_round_trips(version: int, user_data: bytes | None) -> None:
    pairs = [("b-topic", 2), ("a-topic", 1), ("a-topic", 0), ("ünï", 7)]
    data = encode_assignment(pairs, version=version, user_data=user_data)
    assert struct.unpack_from(">h", data)[0] == version
    assert decode_assignment(data) == tuple(sorted(pairs))


def test_hand_built_java_style_assignment_with_null_user_data() -> None:
    data = (
        struct.pack(">hi", 3, 2)
        + struct.pack(">h5si", 5, b"alpha", 2)
        + struct.pack(">ii", 4, 1)
        + struct.pack(">h4si", 4, b"beta", 1)
        + struct.pack(">i", 0)
        + struct.pack(">i", -1)
    )
    assert decode_assignment(data) == (("alpha", 1), ("alpha", 4), ("beta", 0))


def test_newer_versions_are_read_with_the_known_layout_ignoring_trailing_bytes() -> None:
    data = encode_assignment([("t", 0)], version=4) + b"\x00\x00future-field"
    assert decode_assignment(data) == (("t", 0),)


@pytest.mark.parametrize("data", [b"", None, struct.pack(">hi", 0, -1), struct.pack(">hi", 1, 0)])
def test_empty_or_null_assignments_mean_nothing_assigned(data: bytes | None) -> None:
    assert decode_assignment(data) == ()


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # half a version
        struct.pack(">hi", 0, 1) + struct.pack(">h", 10) + b"short",  # topic name cut off
        struct.pack(">hi", 0, 1) + struct.pack(">h1si", 1, b"t", 3) + struct.pack(">i", 0),
        struct.pack(">hi", -1, 0),  # negative version
    ],
)
def test_malformed_assignments_raise(data: bytes) -> None:
    with pytest.raises(AssignmentDecodeError):
        decode_assignment(data)


def test_rows_follow_the_official_tool() -> None:
    member = GroupMember("m-1", "client-1", "/127.0.0.1", (("t", 0), ("t", 1)))
    rows = build_rows([member], committed={("t", 0): 5, ("old", 2): 9}, log_end={("t", 0): 8})
    by_tp = {(r.topic, r.partition): r for r in rows}
    assert list(by_tp) == [("old", 2), ("t", 0), ("t", 1)]
    assert (by_tp["t", 0].committed, by_tp["t", 0].log_end, by_tp["t", 0].lag) == (5, 8, 3)
    assert by_tp["t", 0].member_id == "m-1"
    assert by_tp["t", 0].client_id == "client-1"
    # assigned, never committed: CURRENT-OFFSET and LAG are '-' in the tool
    assert (by_tp["t", 1].committed, by_tp["t", 1].lag, by_tp["t", 1].member_id) == (
        None,
        None,
        "m-1",
    )
    # committed, nobody owns it, end offset unknown (topic gone)
    assert (by_tp["old", 2].member_id, by_tp["old", 2].log_end, by_tp["old", 2].lag) == (
        None,
        None,
        None,
    )


# ----------------------------------------------------------------------------- broker


async def wait_until(
    probe: Callable[[], Awaitable[bool]], within: float = 30.0, what: str = "condition"
) -> None:
    """Poll an async condition until it holds; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)


async def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    """Write ``count`` records to each given partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                await producer.send(
                    topic, f"v{i}".encode(), key=f"k{i}".encode(), partition=partition
                )
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
async def inspector(kafka_connection: KafkaConnection) -> AsyncIterator[GroupInspector]:
    async with GroupInspector(kafka_connection) as inspector:
        yield inspector


def group_name(names: TopicNames, role: str) -> str:
    return f"{names.prefix}{role}-{uuid.uuid4().hex[:6]}"


async def test_snapshot_reports_committed_log_end_and_lag(
    kafka_bootstrap: str, topic_names: TopicNames, inspector: GroupInspector
) -> None:
    topic = topic_names.orders
    await produce(kafka_bootstrap, topic, {0: 5, 1: 3})
    group = group_name(topic_names, "committer")
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await committer.commit(
            {
                TopicPartition(topic, 0): OffsetAndMetadata(2, ""),
                TopicPartition(topic, 1): OffsetAndMetadata(3, ""),
            }
        )
    finally:
        await committer.stop()

    (snapshot,) = await inspector.describe([group])
    assert snapshot.group == group
    assert snapshot.exists
    assert snapshot.members == ()
    rows = {(r.topic, r.partition): (r.committed, r.log_end, r.lag) for r in snapshot.partitions}
    assert rows == {(topic, 0): (2, 5, 3), (topic, 1): (3, 3, 0)}
    assert all(r.member_id is None for r in snapshot.partitions)
    assert snapshot.total_lag == 3
    assert await inspector.end_offsets([topic]) == {(topic, 0): 5, (topic, 1): 3, (topic, 2): 0}


async def test_three_consumers_show_three_members_with_one_partition_each(
    kafka_bootstrap: str, topic_names: TopicNames, inspector: GroupInspector
) -> None:
    topic = topic_names.payments
    await produce(kafka_bootstrap, topic, {0: 4, 1: 2, 2: 1})
    group = group_name(topic_names, "trio")
    consumers = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            client_id=f"trio-{i}",
            enable_auto_commit=False,
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(*(c.start() for c in consumers))  # join together: one rebalance
        snapshot: GroupSnapshot | None = None

        async def three_members_one_partition_each() -> bool:
            nonlocal snapshot
            (snapshot,) = await inspector.describe([group])
            return (
                snapshot.state == STABLE
                and len(snapshot.members) == 3
                and all(len(m.assignments) == 1 for m in snapshot.members)
            )

        await wait_until(three_members_one_partition_each, what="3 members, 1 partition each")
        assert snapshot is not None
        assert {m.client_id for m in snapshot.members} == {"trio-0", "trio-1", "trio-2"}
        assert sorted(tp for m in snapshot.members for tp in m.assignments) == [
            (topic, 0),
            (topic, 1),
            (topic, 2),
        ]
        assert all(m.host.endswith("127.0.0.1") for m in snapshot.members)
        owners = {m.member_id: m.assignments[0] for m in snapshot.members}
        for row in snapshot.partitions:
            assert row.member_id is not None
            assert owners[row.member_id] == (row.topic, row.partition)
            assert row.committed is None
            assert row.lag is None
        assert [r.log_end for r in snapshot.partitions] == [4, 2, 1]
        assert group in await inspector.list_groups()
    finally:
        for consumer in consumers:
            await consumer.stop()
    (after,) = await inspector.describe([group])
    assert after.members == ()
    assert after.partitions == ()


async def test_unknown_group_is_dead_and_does_not_exist(inspector: GroupInspector) -> None:
    (snapshot,) = await inspector.describe([f"no-such-group-{uuid.uuid4().hex}"])
    assert snapshot.state == DEAD
    assert not snapshot.exists
    assert snapshot.partitions == ()
    assert snapshot.total_lag == 0


async def test_looking_at_a_missing_topic_never_creates_it(
    kafka_bootstrap: str, inspector: GroupInspector
) -> None:
    missing = f"missing-{uuid.uuid4().hex}"
    assert await inspector.end_offsets([missing]) == {}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()


async def test_describing_four_groups_is_cheap_enough_for_once_a_second(
    kafka_bootstrap: str, topic_names: TopicNames, inspector: GroupInspector
) -> None:
    groups = [group_name(topic_names, f"g{i}") for i in range(4)]
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=groups[0], enable_auto_commit=False
    )
    await committer.start()
    try:
        tp = TopicPartition(topic_names.orders, 0)
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(0, "")})
    finally:
        await committer.stop()
    await inspector.describe(groups)  # warm the coordinator cache
    started = time.perf_counter()
    for _ in range(10):
        await inspector.describe(groups)
    per_call = (time.perf_counter() - started) / 10
    assert per_call < 0.25, f"describe of 4 groups took {per_call * 1000:.0f} ms"


async def test_an_unknown_group_on_a_fresh_broker_waits_for_the_coordinator(
    tmp_path: Path,
) -> None:
    """The first group call on a new broker finds no coordinator until the broker has created
    its offsets topic (seconds on a busy machine): still one answer, not an error."""
    kafka = LocalKafka(tmp_path / "broker", port=free_port())
    await asyncio.to_thread(kafka.start)
    try:
        async with GroupInspector(KafkaConnection(kafka.bootstrap_servers)) as inspector:
            [snapshot] = await inspector.describe([f"nope-{uuid.uuid4().hex}"])
        assert snapshot.state == DEAD
        assert not snapshot.exists
    finally:
        await asyncio.to_thread(kafka.stop)
