"""Topics on the real session broker: idempotent creation, partition checks, end offsets,
a 10,000-record round trip through a consumer group, and other clients seeing the topics."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.topics import TopicError, describe_topics, ensure_topics
from tests.conftest import free_port


async def test_ensure_topics_creates_eight_topics_with_three_partitions_once(
    kafka_bootstrap: str,
) -> None:
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:12]}.")

    first = await ensure_topics(KafkaConnection(kafka_bootstrap), names)
    second = await ensure_topics(KafkaConnection(kafka_bootstrap), names)

    assert set(first.created) == set(names.all())
    assert len(first.created) == 8
    assert {t for t in names.all() if t.endswith(".dlq")} == {t + ".dlq" for t in names.pipeline()}
    assert second.created == ()
    assert set(second.existing) == set(names.all())
    assert dict(second.partitions) == dict.fromkeys(names.all(), 3)


async def test_existing_topic_with_too_few_partitions_is_reported(kafka_bootstrap: str) -> None:
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:12]}.")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(names.payments, 1, 1)])
    finally:
        await admin.close()

    with pytest.raises(TopicError, match=rf"{names.payments} has 1"):
        await ensure_topics(KafkaConnection(kafka_bootstrap), names)


async def test_describe_topics_gives_partition_counts_and_end_offsets(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(topic_names.orders, b"x", partition=1)
        await producer.send_and_wait(topic_names.orders, b"y", partition=2)
    finally:
        await producer.stop()

    infos = await describe_topics(
        KafkaConnection(kafka_bootstrap), [topic_names.orders, topic_names.payments]
    )

    assert [(i.name, i.partitions, i.end_offsets) for i in infos] == [
        (topic_names.orders, 3, (0, 5, 1)),
        (topic_names.payments, 3, (0, 0, 0)),
    ]
    assert infos[0].records == 6


async def test_ten_thousand_keyed_records_are_consumed_and_committed_to_log_end(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    topic = topic_names.orders
    count = 10_000
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"order-{i % 500}".encode(), value=f"{i}".encode())
            for i in range(count)
        ]
        await producer.flush()
        metadata = [await f for f in futures]
    finally:
        await producer.stop()
    assert len({m.partition for m in metadata}) == 3  # keys spread over every partition

    group = f"{topic_names.prefix}round-trip"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: dict[bytes, list[int]] = {}
    try:
        while sum(len(v) for v in seen.values()) < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                for record in records:
                    assert record.key is not None
                    assert record.value is not None
                    seen.setdefault(record.key, []).append(int(record.value))
        await consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    assert sorted(v for values in seen.values() for v in values) == list(range(count))
    for values in seen.values():  # one key, one partition: per-key order is kept
        assert values == sorted(values)
    assert committed == ends
    assert sum(ends.values()) == count


# kafka-python loads its protocol schemas with a deprecated importlib.resources call.
@pytest.mark.filterwarnings("ignore:(read|open)_text is deprecated:DeprecationWarning")
def test_kafka_python_sees_the_topics(kafka_bootstrap: str, topic_names: TopicNames) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, client_id="kafka-python-test")
    try:
        topics = consumer.topics()
        partitions = {t: consumer.partitions_for_topic(t) for t in topic_names.all()}
    finally:
        consumer.close()

    assert set(topic_names.all()) <= topics
    assert partitions == {name: {0, 1, 2} for name in topic_names.all()}


def test_confluent_kafka_sees_the_topics(kafka_bootstrap: str, topic_names: TopicNames) -> None:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=30)

    for name in topic_names.all():
        assert name in metadata.topics
        assert len(metadata.topics[name].partitions) == 3


def test_kcat_lists_the_topics(kafka_bootstrap: str, topic_names: TopicNames) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (make test installs it with apt-get)")

    done = subprocess.run(
        [kcat, "-L", "-b", kafka_bootstrap, "-m", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    for name in topic_names.all():
        assert f'topic "{name}" with 3 partitions' in done.stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_topics_creates_and_lists_the_pipeline_topics(kafka_bootstrap: str) -> None:
    done = _cli("kafka", "topics", "--bootstrap-servers", kafka_bootstrap)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "END", "OFFSETS"]
    listed = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert listed == dict.fromkeys(TopicNames().all(), 3)


def test_cli_topics_on_an_unreachable_cluster_is_one_line(tmp_path: object) -> None:
    port = free_port()
    done = _cli("kafka", "topics", "--bootstrap-servers", f"127.0.0.1:{port}")

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"orderdeck: error: cannot reach Kafka at 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr
