"""The aiokafka internals orderdeck relies on (``kafka/aiokafka_compat.py``) are still there.

Checked on real, started clients made the way orderdeck makes them, so an aiokafka upgrade
that renames or drops one fails here, naming it (``AIOKafkaProducer._sender.sender_task``),
instead of in a stop while Kafka is away. The last two tests keep ``REQUIRED`` complete and
the internals in that one module.
"""

from __future__ import annotations

import ast
import asyncio
import gc
from pathlib import Path

from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.protocol.metadata import MetadataRequest

from orderdeck.events import TopicNames
from orderdeck.kafka import aiokafka_compat
from orderdeck.kafka.aiokafka_compat import (
    REQUIRED,
    missing_internals,
    queued_batches,
    retrieve_transaction_failure,
    stop_within,
)
from orderdeck.kafka.clients import new_admin, new_producer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.services.notification import NotificationService
from orderdeck.services.worker import ServiceWorker

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "orderdeck"
COMPAT = Path(aiokafka_compat.__file__)


async def test_a_service_consumer_has_the_internals_its_forced_close_needs(
    kafka_connection: KafkaConnection, topic_names: TopicNames, tmp_path: Path
) -> None:
    worker = ServiceWorker(
        NotificationService(),
        kafka=kafka_connection,
        store_path=tmp_path / "orders.db",
        names=topic_names,
    )
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(30):
            await worker.joined.wait()
        assert worker.consumer is not None
        assert missing_internals(worker.consumer) == []
    finally:
        worker.request_stop()
        async with asyncio.timeout(10):
            await running


async def test_a_producer_and_its_queued_batch_have_the_internals_a_forced_close_needs(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    producer = new_producer(
        kafka_connection, client_suffix="compat", acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        batch.append(timestamp=None, key=b"k", value=b"v", headers=[])
        batch.close()
        acked = await producer.send_batch(batch, topic_names.orders, partition=0)
        # Nothing was awaited since aiokafka queued the batch: its sender has not taken it.
        assert queued_batches(producer), "the batch just handed over is not queued"
        assert missing_internals(producer) == []
        async with asyncio.timeout(10):
            await acked
    finally:
        await producer.stop()


async def test_the_admin_client_sends_protocol_requests(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    admin = new_admin(kafka_connection, client_suffix="compat")
    await admin.start()
    try:
        assert missing_internals(admin) == []
        request = MetadataRequest([topic_names.orders], allow_auto_topic_creation=False)
        response = await aiokafka_compat.send_request(admin, request)
        [topic] = response.to_object()["topics"]
        assert (topic["topic"], topic["error_code"], len(topic["partitions"])) == (
            topic_names.orders,
            0,
            3,
        )
    finally:
        await admin.close()


def _private_attributes(path: Path) -> set[str]:
    """Underscored attribute names read off anything but ``self``/``cls`` in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.add(node.attr)
    return found


def test_required_names_every_internal_the_compat_module_reads() -> None:
    listed = {part for paths in REQUIRED.values() for path in paths for part in path.split(".")}
    assert _private_attributes(COMPAT) <= listed


def test_no_other_module_or_test_reads_an_aiokafka_internal() -> None:
    internals = {
        part
        for paths in REQUIRED.values()
        for path in paths
        for part in path.split(".")
        if part.startswith("_")
    }
    root = PACKAGE_DIR.parent
    sources = [
        *PACKAGE_DIR.rglob("*.py"),
        *(root / "tests").rglob("*.py"),
        *(root / "bench").rglob("*.py"),
    ]
    offenders = {
        str(path.relative_to(root)): sorted(_private_attributes(path) & internals)
        for path in sorted(sources)
        if path not in (COMPAT, Path(__file__).resolve())
    }
    assert {p: names for p, names in offenders.items() if names} == {}


async def test_a_forced_close_leaves_no_unretrieved_future_behind(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    """A send nobody waits for any more, failed by a forced close: asyncio must find nothing
    to report when its futures are collected ("Future exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        producer = new_producer(kafka_connection, client_suffix="compat-force")
        await producer.start()
        batch = producer.create_batch()
        batch.append(timestamp=None, key=b"k", value=b"v", headers=[])
        batch.close()
        acked = await producer.send_batch(batch, topic_names.orders, partition=0)
        assert queued_batches(producer), "the batch just handed over is not queued"
        await stop_within(producer, 0.0, "compat producer")  # no grace: closed by force
        assert acked.done()
        assert acked.exception() is not None  # read, as the sender's caller would
        del acked, batch, producer
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [m for m in reported if "never retrieved" in m] == []


async def test_a_fenced_transaction_leaves_no_unretrieved_future_behind(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    """Two redrives of one DLQ overlap (``kafka/dead_letters.py``): the newer producer fences
    the older, whose sender dies with ProducerFenced and fails every batch it still holds.
    Once the loser retrieved its failure, nothing may be left for asyncio to report."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    transactional_id = f"compat-fenced-{topic_names.prefix}"
    older = new_producer(kafka_connection, client_suffix="old", transactional_id=transactional_id)
    newer = new_producer(kafka_connection, client_suffix="new", transactional_id=transactional_id)
    try:
        await older.start()
        fenced: BaseException | None = None
        try:
            async with older.transaction():
                await (await older.send(topic_names.orders, b"first", partition=0))
                await newer.start()  # same transactional id: the older producer is fenced
                # A partition new to the transaction: the sender asks the coordinator, which
                # answers ProducerFenced, and the sender fails what it holds.
                pending = [
                    await older.send(topic, b"after", partition=1)
                    for topic in (topic_names.orders, topic_names.payments)
                ]
                await asyncio.gather(*pending)
        except KafkaError as exc:
            fenced = exc
            retrieve_transaction_failure(older)
        assert isinstance(fenced, ProducerFenced), fenced
        await older.stop()
        del pending, older  # what asyncio reports, it reports when the futures are collected
        gc.collect()
        await asyncio.sleep(0)
    finally:
        await newer.stop()
        loop.set_exception_handler(previous)
    assert [m for m in reported if "never retrieved" in m] == []
