"""``orderdeck kafka describe`` agrees with Kafka's own ``kafka-topics --describe``.

Both read the same broker one after the other while nothing changes its topics, and must name
the same topics and, partition by partition, the same leader, replicas and in-sync replicas.
The settings and log-end offsets, which ``kafka-topics`` does not print per partition, are
checked against what the test itself set and wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from orderdeck.commands.kafka_describe import render, retention
from orderdeck.events import TopicNames
from orderdeck.kafka.clients import new_admin
from orderdeck.kafka.cluster_model import Broker, ClusterView, PartitionInfo, TopicInfo
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import LocalKafka, tool_command

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
#: Per partition: leader, replicas, ISR, as the tool prints them ("1", "1,2,3", ...).
ToolPartition = tuple[str, str, str]


def orderdeck(bootstrap: str, *args: str) -> Any:
    """Run ``orderdeck kafka describe --json ARGS`` and return the parsed JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", "kafka", "describe", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        # No bootstrap: the cluster is the one a --kafka-config file among ``args`` names.
        env={
            **{k: v for k, v in os.environ.items() if k != "ORDERDECK_BOOTSTRAP_SERVERS"},
            **({"ORDERDECK_BOOTSTRAP_SERVERS": bootstrap} if bootstrap else {}),
        },
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def official(bootstrap: str, *args: str) -> str:
    done = subprocess.run(
        tool_command(TOPIC_COMMAND, "--bootstrap-server", bootstrap, *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def official_partitions(text: str) -> dict[tuple[str, int], ToolPartition]:
    """The tool's partition lines (``Topic: t<TAB>Partition: 0<TAB>Leader: 1 ...``)."""
    rows: dict[tuple[str, int], ToolPartition] = {}
    for line in text.splitlines():
        fields = dict(
            part.split(": ", 1) if ": " in part else (part.rstrip(":"), "")
            for part in line.strip().split("\t")
        )
        if "Partition" in fields:
            rows[(fields["Topic"], int(fields["Partition"]))] = (
                fields["Leader"],
                fields["Replicas"],
                fields["Isr"],
            )
    return rows


def ours_as_tool_rows(view: dict[str, Any]) -> dict[tuple[str, int], ToolPartition]:
    def ids(values: list[int]) -> str:
        return ",".join(map(str, values))

    return {
        (t["name"], p["partition"]): (
            "none" if p["leader"] < 0 else str(p["leader"]),
            ids(p["replicas"]),
            ids(p["isr"]),
        )
        for t in view["topics"]
        for p in t["partitions"]
    }


@pytest.fixture
def compacted_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A 2-partition compacted topic with a one-hour retention, deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}.compacted"
    kafka = KafkaConnection(kafka_bootstrap)

    async def create() -> None:
        admin = new_admin(kafka, client_suffix="tests")
        await admin.start()
        try:
            configs = {"cleanup.policy": "compact", "retention.ms": "3600000"}
            await admin.create_topics([NewTopic(name, 2, 1, topic_configs=configs)])
        finally:
            await admin.close()

    async def delete() -> None:
        admin = new_admin(kafka, client_suffix="tests")
        await admin.start()
        try:
            await admin.delete_topics([name])
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(delete())


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


def test_describe_matches_kafka_topics_for_every_topic(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    ours = orderdeck(kafka_bootstrap)
    tool = official(kafka_bootstrap, "--describe")

    assert ours_as_tool_rows(ours) == official_partitions(tool)
    for topic in topic_names.all():
        assert sum(1 for t, _ in ours_as_tool_rows(ours) if t == topic) == 3
    brokers = ours["brokers"]
    assert brokers
    assert all(b["host"] and b["port"] > 0 for b in brokers)
    assert sum(b["isController"] for b in brokers) == 1
    assert ours["controllerId"] in {b["id"] for b in brokers}


def test_exclude_internal_lists_the_topics_kafka_topics_lists(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    ours = orderdeck(kafka_bootstrap, "--exclude-internal")
    tool = official(kafka_bootstrap, "--list", "--exclude-internal")

    assert [t["name"] for t in ours["topics"]] == sorted(tool.split())
    assert not any(t["internal"] for t in ours["topics"])


def test_one_topic_with_its_settings_and_log_end_offsets(
    kafka_bootstrap: str, compacted_topic: str
) -> None:

    asyncio.run(produce(kafka_bootstrap, compacted_topic, {0: 5, 1: 2}))

    ours = orderdeck(kafka_bootstrap, "--topic", compacted_topic)
    tool = official(kafka_bootstrap, "--describe", "--topic", compacted_topic)

    assert ours_as_tool_rows(ours) == official_partitions(tool)
    (topic,) = ours["topics"]
    assert topic["name"] == compacted_topic
    assert topic["cleanupPolicy"] == "compact"
    assert topic["retentionMs"] == 3_600_000
    assert topic["replicationFactor"] == 1
    assert [p["logEndOffset"] for p in topic["partitions"]] == [5, 2]
    assert topic["underReplicated"] == 0
    assert topic["offline"] == 0


def test_an_unknown_topic_is_an_error_and_is_not_created(kafka_bootstrap: str) -> None:
    name = f"t{uuid.uuid4().hex[:12]}.missing"
    done = subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", "kafka", "describe", "--topic", name],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORDERDECK_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )
    assert done.returncode == 1
    assert f"no such topic: {name}" in done.stderr
    assert name not in official(kafka_bootstrap, "--list").split()


def test_the_text_report_flags_under_replicated_and_offline_partitions() -> None:
    view = ClusterView(
        cluster_id="abc",
        controller_id=2,
        brokers=(
            Broker(1, "127.0.0.1", 9092, None, False),
            Broker(2, "127.0.0.1", 9093, "r2", True),
        ),
        topics=(
            TopicInfo(
                name="orders",
                internal=False,
                partitions=(
                    PartitionInfo(0, 1, (1, 2, 3), (1, 2, 3), (), 10),
                    PartitionInfo(1, 2, (2, 3, 1), (2,), (3,), 4),
                    PartitionInfo(2, -1, (3, 1, 2), (3,), (3,), None),
                ),
                retention_ms=604_800_000,
                cleanup_policy="delete",
            ),
        ),
        taken_at=0.0,
    )
    lines = render(view)
    rows = [line.split() for line in lines]

    assert lines[0] == "cluster abc  controller 2"
    assert ["2", "127.0.0.1", "9093", "r2", "yes"] in rows
    assert ["1", "127.0.0.1", "9092", "-"] in rows
    assert (
        "topic orders  partitions 3  replication 3  retention 7d  cleanup delete  "
        "[2 under-replicated, 1 offline]"
    ) in lines
    assert ["0", "1", "1,2,3", "1,2,3", "-", "10"] in rows
    assert ["1", "2", "2,3,1", "2", "under-replicated", "4"] in rows
    assert ["2", "none", "3,1,2", "3", "offline,under-replicated", "-"] in rows
    assert view.under_replicated == 2
    assert view.offline == 1


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(None, "-"), (-1, "forever"), (604_800_000, "7d"), (7_200_000, "2h"), (90_000, "90000ms")],
)
def test_retention_reads_as_days_hours_or_ms(ms: int | None, shown: str) -> None:
    assert retention(ms) == shown


def test_a_sasl_ssl_cluster_is_described_with_the_client_settings_file(
    secure_kafka: LocalKafka,
) -> None:
    """TLS and SASL come from ``--kafka-config`` like every other command's: the describe's
    client is built by ``kafka/clients.py``."""
    name = f"t{uuid.uuid4().hex[:12]}.secure"
    kafka = secure_kafka.connection()

    async def admin_call(create: bool) -> None:
        admin = new_admin(kafka, client_suffix="tests")
        await admin.start()
        try:
            if create:
                await admin.create_topics([NewTopic(name, 2, 1)])
            else:
                await admin.delete_topics([name])
        finally:
            await admin.close()

    asyncio.run(admin_call(create=True))
    try:
        view = orderdeck(
            "", "--kafka-config", str(secure_kafka.client_properties_path), "--topic", name
        )
    finally:
        asyncio.run(admin_call(create=False))
    (broker,) = view["brokers"]
    assert broker["isController"]
    (topic,) = view["topics"]
    assert topic["name"] == name
    assert [(p["leader"], p["replicas"], p["isr"]) for p in topic["partitions"]] == [
        (broker["id"], [broker["id"]], [broker["id"]])
    ] * 2
    assert [p["logEndOffset"] for p in topic["partitions"]] == [0, 0]
    assert topic["cleanupPolicy"] == "delete"
