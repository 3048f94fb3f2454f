"""The one Kafka producer every orderdeck component uses.

It is configured for durability first (``acks=all`` plus the idempotent producer, so a retried
send can never duplicate or reorder a record within a partition) and for throughput second
(``linger_ms=5`` lets concurrent sends share a request). Every send waits for the broker's
acknowledgement and returns where the record landed, because callers act on that: the API
answers 201 only after the ack, and services mark outbox rows sent only after it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from orderdeck.events import encode, headers_for
from orderdeck.kafka.aiokafka_compat import (
    FORCE_CLOSE_S,
    cancel_tasks,
    send_to_any_broker,
    stop_within,
)
from orderdeck.kafka.clients import client_id_for, new_producer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.rates import RateMeter

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_MS = 10_000
#: How long stop() lets pending sends drain before failing them (Kafka may be unreachable).
STOP_TIMEOUT_S = 1.0
#: How long the reason for an unacknowledged send may take to find out (see replica_shortage).
SHORTAGE_CHECK_S = 1.0
#: Single events linger only while, at the rate they arrived over this many last seconds, the
#: wait would gather at least LINGER_MIN_GATHERED more on average (EventProducer.linger_due).
#: Short, so that a burst after a quiet spell lingers within 50 ms: with 250 ms the first
#: quarter-second of a saturation run went out one request per order.
LINGER_RATE_WINDOW_S = 0.05
#: Measured with the API's 3 ms: at 300 orders/s (0.9 of an order) the wait still saved 0.07
#: cores, at 100/s (0.3) it saved nothing and cost 3 ms on every 201 (BENCHMARKS.md, issue 18).
LINGER_MIN_GATHERED = 0.5

#: (topic, key, value, headers) of one record for :meth:`EventProducer.send_many`.
RawRecord = tuple[str, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]

_MEMO_SIZE = 65_536


class KeyPartitioner:
    """Kafka's default partitioner (murmur2 of the key, as the Java client) with a memo.

    An order id is hashed once per process instead of once per event: the API and the
    order, payment and inventory services all produce the same key, and aiokafka's murmur2 is
    pure Python (tens of microseconds per key). Keyless records go to a random partition.
    """

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}
        self._random = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._random(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= _MEMO_SIZE:
                self._hashes.clear()  # a cheap bound; old orders are rarely produced again
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


#: One memo for every producer of the process.
PARTITIONER = KeyPartitioner()


def _shortage(
    topic: str, partition: int, leader: int, replicas: Sequence[int], isr: Sequence[int]
) -> str | None:
    where = f"{topic}[{partition}]"
    if leader < 0:
        return f"partition {where} has no leader"
    # orderdeck gives three-replica topics min.insync.replicas=2 (kafka/topics.py).
    if len(replicas) >= 3 and len(isr) < 2:
        return (
            f"not enough in-sync replicas: partition {where} has {len(isr)} of "
            f"{len(replicas)} in sync and min.insync.replicas=2"
        )
    return None


@dataclass(frozen=True)
class Delivery:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class EventProducer:
    """An idempotent, ``acks=all`` producer that sends events keyed by order id."""

    def __init__(
        self,
        kafka: KafkaConnection,
        client_suffix: str = "",
        request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS,
        linger_s: float = 0.0,
    ) -> None:
        """``linger_s``: how long a single event (:meth:`send_event`) waits for others to
        share its record batch and request, when none is on its way already and events
        arrive fast enough for the wait to gather company (:meth:`linger_due`)."""
        self.kafka = kafka
        self._linger_s = linger_s
        #: Single events enqueued so far, and how fast that total grew lately.
        self._arrivals = 0
        self._arrival_meter = RateMeter(LINGER_RATE_WINDOW_S)
        self._producer = new_producer(
            kafka,
            client_suffix=client_suffix,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=request_timeout_ms,
            max_batch_size=256 * 1024,
            partitioner=PARTITIONER,
        )
        self._started = False
        self._client_id = client_id_for(kafka, client_suffix)
        #: Single events waiting to share a record batch (see send_event).
        self._waiting: list[_Waiting] = []
        self._batcher: asyncio.Task[None] | None = None
        #: Per (topic, partition): the events routed there, handed to aiokafka by its own task.
        self._lanes: dict[tuple[str, int], _Lane] = {}

    async def start(self) -> None:
        """Connect and fetch metadata; raises a KafkaError when the cluster cannot be reached."""
        try:
            await self._producer.start()
        except BaseException:
            # aiokafka leaves its client half-open when start fails; close it so nothing leaks.
            await self._producer.stop()
            raise
        self._started = True

    async def stop(self, grace: float = STOP_TIMEOUT_S) -> None:
        """Flush pending sends and close the connection (safe to call twice).

        Bounded: aiokafka's own stop waits for every pending batch, which never happens while
        the cluster is unreachable. After ``grace`` seconds the pending sends fail (their callers
        get a KafkaConnectionError; nothing acknowledged is lost, and unacknowledged work is
        redone by its owner) and the sender and client are closed, leaving no task behind.
        Also when the caller cancels the wait.
        """
        if not self._started:
            return
        self._started = False
        await self._stop_batcher()
        await stop_within(self._producer, grace, f"producer {self._client_id}:")

    async def send_event(
        self,
        event: Any,
        topic: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the shared interface names it
    ) -> Delivery:
        """Send one event (an ``orderdeck.events`` model) to ``topic`` and wait for its ack.

        ``topic`` is the concrete name (``TopicNames.resolve(event.topic)``). With ``timeout``
        the wait is bounded and ``TimeoutError`` is raised when it runs out; the record may
        still be written later, which is why event ids make consumers idempotent.
        """
        return await self.send_record(
            topic, event.orderId.encode(), encode(event), headers_for(event), timeout=timeout
        )

    async def send_record(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - as send_event
    ) -> Delivery:
        """Send one record of raw bytes and wait for its ack, as :meth:`send_event` does.

        Records sent at about the same time share record batches, as events do.
        """
        delivery = self._enqueue(topic, key, value, headers)
        if timeout is None:
            return await delivery
        async with asyncio.timeout(timeout):
            return await delivery

    async def replica_shortage(
        self,
        topic: str,
        key: bytes,
        timeout: float = SHORTAGE_CHECK_S,  # noqa: ASYNC109 - a bound on one small request
    ) -> str | None:
        """Why a send to ``key``'s partition may not be acknowledged, when the cause is
        replication: the partition has no leader, or fewer in-sync replicas than an
        ``acks=all`` write needs (NOT_ENOUGH_REPLICAS). None when that is not the case or the
        cluster does not answer within ``timeout``.

        The idempotent producer retries NOT_ENOUGH_REPLICAS until the caller's bound runs out,
        so the error itself never reaches the caller; fresh metadata says it instead.
        """
        from aiokafka.protocol.metadata import MetadataRequest

        client = self._producer.client
        request = MetadataRequest([topic], allow_auto_topic_creation=False)
        try:
            async with asyncio.timeout(timeout):
                partitions = sorted(await self._producer.partitions_for(topic))
                response = await send_to_any_broker(client, request)
        except (TimeoutError, KafkaError, OSError):
            return None
        partition = PARTITIONER(key, partitions, partitions)
        for entry in response.to_object()["topics"]:
            for part in entry.get("partitions") or ():
                if entry.get("topic") == topic and part["partition"] == partition:
                    return _shortage(
                        topic, partition, part["leader"], part["replicas"], part["isr"]
                    )
        return None

    # Single events (the API's OrderPlaced) are gathered into record batches, as send_many
    # does for a service's batch: the requests that finish validation while the previous
    # batch is on its way share the next one, and aiokafka's per-message bookkeeping (a
    # third of the API's CPU per order) is skipped. Each caller still waits for the ack of
    # its own record and learns its own offset (the batch's base offset plus its position).
    #
    # Each partition has a lane of its own: aiokafka's send_batch waits while the partition
    # already holds an undrained batch, which during a failover lasts until the dead leader's
    # successor is known. Shipped partition after partition by one task, that wait held up
    # every partition's orders; in lanes only the waiting partition's orders wait.

    def _enqueue(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Delivery]:
        loop = asyncio.get_running_loop()
        self._arrivals += 1
        self._arrival_meter.add(loop.time(), self._arrivals)
        delivery: asyncio.Future[Delivery] = loop.create_future()
        self._waiting.append(_Waiting(topic, key, value, tuple(headers), delivery))
        if self._batcher is None or self._batcher.done():
            self._batcher = loop.create_task(self._ship_waiting(), name="orderdeck-produce-batcher")
        return delivery

    def linger_due(self) -> bool:
        """Whether a single event should wait ``linger_s`` for others: only when, at the
        recent arrival rate, the wait gathers at least LINGER_MIN_GATHERED more on average.
        Slower, it is latency that saves nothing (at 100 orders/s a 3 ms wait gathers 0.3)."""
        return bool(self._linger_s) and self.arrival_rate * self._linger_s >= LINGER_MIN_GATHERED

    @property
    def arrival_rate(self) -> float:
        """Single events per second over the last LINGER_RATE_WINDOW_S (0.0 before two)."""
        return self._arrival_meter.rate() or 0.0

    async def _ship_waiting(self) -> None:
        """Route the waiting events to their partitions' lanes (after ``linger_s``, when due)."""
        if self.linger_due():
            await asyncio.sleep(self._linger_s)
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            routed: set[int] = set()
            try:
                for item in waiting:
                    if item.delivery.done():
                        continue  # its caller gave up (timed out): nobody awaits this record
                    partitions = sorted(await self._producer.partitions_for(item.topic))
                    partition = PARTITIONER(item.key, partitions, partitions)
                    lane = self._lanes.setdefault((item.topic, partition), _Lane())
                    lane.items.append(item)
                    routed.add(id(item))
                    if lane.task is None or lane.task.done():
                        lane.task = asyncio.get_running_loop().create_task(
                            self._ship_lane(item.topic, partition, lane),
                            name=f"orderdeck-produce-{item.topic}-{partition}",
                        )
            except BaseException as exc:
                _fail([i for i in waiting if id(i) not in routed], exc)
                if not isinstance(exc, Exception):
                    raise

    async def _ship_lane(self, topic: str, partition: int, lane: _Lane) -> None:
        """Hand one partition's events to aiokafka, in order, as many at a time as wait."""
        while lane.items:
            items, lane.items = lane.items, []
            handed: set[int] = set()  # items whose batch aiokafka took (it resolves them)
            try:
                live = [item for item in items if not item.delivery.done()]
                if live:
                    await self._ship(topic, partition, live, handed)
            except BaseException as exc:
                _fail([i for i in items if id(i) not in handed], exc)
                if not isinstance(exc, Exception):
                    raise

    async def _ship(
        self, topic: str, partition: int, items: list[_Waiting], handed: set[int]
    ) -> None:
        """Put ``items`` into as few record batches as they fit and hand those to aiokafka."""
        timestamp_ms = int(time.time() * 1000)
        records = [(item.key, item.value, item.headers) for item in items]
        start = 0
        for batch, count in self._pack(records, timestamp_ms):
            shipped = items[start : start + count]
            start += count
            acked = await self._producer.send_batch(batch, topic, partition=partition)
            handed.update(id(item) for item in shipped)
            acked.add_done_callback(
                functools.partial(_deliver, topic, partition, timestamp_ms, shipped)
            )

    def _pack(
        self,
        records: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
        timestamp_ms: int | None,
    ) -> Iterator[tuple[Any, int]]:
        """Closed record batches holding ``records`` in order, each with how many it holds.

        Closed, a batch is complete: aiokafka sends it without waiting out ``linger_ms``.
        """
        batch, count = self._producer.create_batch(), 0
        for key, value, headers in records:
            appended = batch.append(
                timestamp=timestamp_ms, key=key, value=value, headers=list(headers)
            )
            if appended is None:  # full: this one starts the next batch
                batch.close()
                yield batch, count
                batch, count = self._producer.create_batch(), 0
                batch.append(timestamp=timestamp_ms, key=key, value=value, headers=list(headers))
            count += 1
        batch.close()
        yield batch, count

    async def _stop_batcher(self) -> None:
        """Fail single events not handed to aiokafka yet (the producer is stopping)."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if self._batcher is not None:
            tasks.append(self._batcher)
        await cancel_tasks(tasks, FORCE_CLOSE_S)
        self._batcher = None
        waiting, self._waiting = self._waiting, []
        for lane in self._lanes.values():
            waiting.extend(lane.items)
        self._lanes.clear()
        for item in waiting:
            if not item.delivery.done():
                item.delivery.set_exception(KafkaConnectionError("the producer was stopped"))

    async def send_many(self, records: Sequence[RawRecord]) -> None:
        """Send many records and wait until every one is acknowledged.

        Records are grouped per partition into record batches (the default partitioner's
        choice, so an order id lands on the same partition as with :meth:`send_event`) and
        order is kept within a partition. This skips aiokafka's per-message bookkeeping,
        which is most of the cost of producing a service's whole batch. Raises the first
        error if any batch fails; the caller may then resend all of them (consumers are
        idempotent by event id).
        """
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[RawRecord]] = {}
        for record in records:
            topic, key = record[0], record[1]
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            all_partitions = partitions[topic]
            partition = PARTITIONER(key, all_partitions, all_partitions)
            groups.setdefault((topic, partition), []).append(record)
        futures: list[asyncio.Future[Any]] = []
        try:
            for (topic, partition), group in groups.items():
                packed = self._pack(
                    [(key, value, headers) for _, key, value, headers in group], None
                )
                for batch, _ in packed:
                    futures.append(
                        await self._producer.send_batch(batch, topic, partition=partition)
                    )
        except BaseException:
            # A later batch was refused (the producer is closing) or we were cancelled: the
            # batches handed over already fail or finish unawaited; read their outcome so
            # asyncio does not print "Future exception was never retrieved" at exit.
            for future in futures:
                future.add_done_callback(_retrieve)
            raise
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


@dataclass(frozen=True)
class _Waiting:
    """A single event waiting to be put into a record batch."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    delivery: asyncio.Future[Delivery]


@dataclass
class _Lane:
    """One partition's events not handed to aiokafka yet, and the task that hands them."""

    items: list[_Waiting] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def _fail(items: Sequence[_Waiting], exc: BaseException) -> None:
    """Fail the deliveries of ``items`` nobody resolved (a cancel fails them as stopped)."""
    failure = exc if isinstance(exc, Exception) else KafkaConnectionError("stopped")
    for item in items:
        if not item.delivery.done():
            item.delivery.set_exception(failure)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (nobody is left to await it)."""
    if not future.cancelled():
        future.exception()


def _deliver(
    topic: str,
    partition: int,
    timestamp_ms: int,
    items: list[_Waiting],
    acked: asyncio.Future[Any],
) -> None:
    """Tell every record of an acknowledged (or failed) batch where it landed."""
    if acked.cancelled() or acked.exception() is not None:
        error = acked.exception() if not acked.cancelled() else KafkaConnectionError("cancelled")
        for item in items:
            if not item.delivery.done():
                item.delivery.set_exception(error or KafkaConnectionError("send failed"))
        return
    meta = acked.result()
    # A topic with LogAppendTime reports the broker's time; otherwise the records keep ours.
    timestamp = meta.timestamp if meta.timestamp not in (None, -1) else timestamp_ms
    for index, item in enumerate(items):
        if not item.delivery.done():
            item.delivery.set_result(Delivery(topic, partition, meta.offset + index, timestamp))
