"""The loop every service runs: consume a batch -> one store transaction -> produce -> commit.

Guarantees, and why the steps are in this order:

1. ``getmany`` returns a batch of records (auto-commit is off).
2. The batch is applied in ONE transaction: each record's event is claimed for this service
   (a replay changes nothing), handled, and its outgoing events appended to the outbox; poison
   records are dead-lettered (``services/batch.py``).
3. After the commit, the batch's outbox rows are produced and every ack is awaited.
4. Only then are the consumer offsets committed (3 and 4: ``services/acks.py``, in the
   background while the next batches go through 1 and 2).

A crash between any two steps loses nothing: before 2 the records are redelivered; between 2
and 3 the outbox rows are still unsent and are produced when the service starts again (and by a
periodic sweep for rows a dead peer left behind); between 3 and 4 the records are redelivered
and recognised as processed. Downstream consumers are idempotent by event id, and outgoing
event ids are derived from the incoming one, so a resent row is a harmless duplicate.

While records keep arriving at the order service, each of its batches is given a few
milliseconds to gather (``services/pacing.py``, a linger that follows the load); the services
after it receive those batches whole. Like the commit interval of the acknowledgement
pipeline, this trades a little latency for fewer transactions and broker requests, which is
what a batch costs whatever its size.

Transient failures (the store busy, retriable Kafka errors) are retried with backoff; anything
else ends :meth:`ServiceWorker.run` with the exception so the supervisor restarts the worker.

Store work runs on the store's own thread (see ``StoreBackend.run``; the workers of a process
share one store), so the event loop, which may also serve the API, never waits on the database; in a
process that only runs services it runs on the loop itself (``StoreBackend.run_inline``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from orderdeck.events import TopicNames
from orderdeck.kafka.aiokafka_compat import stop_within
from orderdeck.kafka.clients import new_consumer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer
from orderdeck.services import FailureRecord, Service, ServiceCounters
from orderdeck.services.acks import Abandoned, AckPipeline
from orderdeck.services.batch import BatchApplier, StoreCalls
from orderdeck.services.faults import NO_FAULTS, ServiceFaults
from orderdeck.services.pacing import LATE_S, Pacer, oldest_order_age_s
from orderdeck.store import open_store
from orderdeck.store.tx import StoreBackend
from orderdeck.store.url import StoreURL

log = logging.getLogger(__name__)

BATCH_MAX_RECORDS = 500
POLL_TIMEOUT_MS = 200
#: Pacing: after a batch, the next one is not taken until the pacer's linger has passed
#: (``services/pacing.py``), and the consumer does not fetch meanwhile
#: (:meth:`ServiceWorker._hold_fetches`): what arrived comes in one fetch when it ends. Much
#: of a batch's cost does not depend on its size (a fetch, a transaction's COMMIT, a produce
#: request, the broker's handling of each), so fewer, larger batches cost less CPU per order
#: (BENCHMARKS.md, "Cost that follows the load"). A trickle is never held back, nor a full
#: batch (a backlog); and only the order service is paced, the later services receiving its
#: batches.
#: Unsent outbox rows older than this are swept up by any worker of the same service.
STALE_OUTBOX_S = 5.0
SWEEP_INTERVAL_S = 5.0
PRUNE_INTERVAL_S = 60.0
#: How long stopping waits for the consumer to leave the group and for the producer to flush
#: (Kafka may be down); then they are closed by force. Both fit the supervisor's grace period.
CLOSE_TIMEOUT_S = 1.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drains the pipeline before partitions go; tells the worker what it was given."""

    def __init__(
        self, pipeline: AckPipeline, assigned: Callable[[frozenset[TopicPartition]], None]
    ) -> None:
        self._pipeline = pipeline
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Batches in flight commit their offsets as their last step; wait for them so the
        # next owner of these partitions starts after our last processed record.
        await self._pipeline.drain()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned(frozenset(assigned))


class ServiceWorker:
    """One consumer instance of a service (several may share the group)."""

    def __init__(
        self,
        service: Service,
        *,
        kafka: KafkaConnection,
        store_path: Path | StoreURL,
        names: TopicNames,
        counters: ServiceCounters | None = None,
        instance: int = 0,
        paused: bool = False,
        on_failure: Callable[[FailureRecord], None] | None = None,
        on_batch: Callable[[], None] | None = None,
        store: StoreBackend | None = None,
        faults: ServiceFaults | None = None,
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.store_path = store_path
        self.names = names
        self._applier = BatchApplier(service, names)
        self.topic = self._applier.topic
        self.group = self.topic
        self.counters = counters or ServiceCounters()
        self.instance = instance
        self.paused = paused
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.joined = asyncio.Event()
        self._on_failure = on_failure
        self._on_batch = on_batch
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: EventProducer | None = None
        self._pipeline: AckPipeline | None = None
        self._calls: StoreCalls | None = None
        # A shared store (the supervisor's) is used as is; otherwise the worker opens its own.
        self._store: StoreBackend | None = store
        self._owns_store = store is None
        self._last_sweep = 0.0
        self._last_prune = 0.0
        #: Crashes and latency injected from the control center (services/faults.py).
        self._fault = (faults or NO_FAULTS).switch(service.name)
        #: Only a service whose inbox is fed record by record lets batches gather.
        self._pacer = Pacer(full=BATCH_MAX_RECORDS) if service.paced else None

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The worker's Kafka consumer while it runs; None before it started and once stopped."""
        return self._consumer

    # -- control

    def request_stop(self) -> None:
        """Ask the loop to finish its batch, commit and leave the group."""
        self._stopping.set()

    def pause(self) -> None:
        """Stop fetching (group membership is kept, so lag grows while paused)."""
        self.paused = True
        if self._consumer is not None and self.assigned:
            self._consumer.pause(*self.assigned)

    def resume(self) -> None:
        """Fetch again from the committed position."""
        self.paused = False
        if self._consumer is not None and self.assigned:
            self._consumer.resume(*self.assigned)

    @property
    def waiting_on_store(self) -> bool:
        """True while this worker's store calls are stuck behind another database writer."""
        return self._calls is not None and self._calls.stuck(time.monotonic())

    def _took(self, assigned: frozenset[TopicPartition]) -> None:
        """The group gave this worker ``assigned`` (the rebalance listener's news)."""
        self.assigned = assigned
        if self.paused and assigned and self._consumer is not None:
            self._consumer.pause(*assigned)
        self.joined.set()

    # -- lifecycle

    async def run(self) -> None:
        """Consume until :meth:`request_stop`; raises on a failure the supervisor must handle."""
        try:
            if self._store is None:
                self._store = await asyncio.to_thread(open_store, self.store_path)
            self._calls = StoreCalls(self._store, self._stopping, self.service.name)
            self._producer = EventProducer(self.kafka, client_suffix=f"{self.service.name}-out")
            await self._producer.start()
            pipeline = self._pipeline = AckPipeline(
                self.service.name,
                producer=self._producer,
                calls=self._calls,
                stopping=self._stopping,
                counters=self.counters,
                on_failure=self._on_failure,
                on_batch=self._on_batch,
            )
            await pipeline.send_unsent(older_than_s=0.0)
            self._last_sweep = self._last_prune = time.monotonic()
            self._consumer = new_consumer(
                self.kafka,
                group_id=self.group,
                client_suffix=f"{self.service.name}-{self.instance}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # DLQ redrives are transactional (kafka/dead_letters.py): skip aborted ones.
                isolation_level="read_committed",
                # Long poll: the broker answers as soon as a record arrives, so a long wait
                # costs no latency and keeps an idle pipeline from spinning.
                fetch_max_wait_ms=500,
                max_poll_records=BATCH_MAX_RECORDS,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                request_timeout_ms=10_000,
            )
            pipeline.commit_through(self._consumer)
            self._consumer.subscribe([self.topic], listener=_Rebalance(pipeline, self._took))
            await self._consumer.start()
            await self._loop(self._consumer, pipeline)
        except Abandoned:
            # Stopping while Kafka does not answer: unsent outbox rows stay unsent and
            # uncommitted offsets uncommitted, so the work is redone after a restart.
            log.warning("%s: Kafka did not answer while stopping", self.service.name)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        # Both are bounded by themselves and close side by side, so a stop with Kafka away
        # fits the supervisor's grace period (and a cancellation still closes both).
        closing: list[Coroutine[Any, Any, None]] = []
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            closing.append(
                stop_within(consumer, CLOSE_TIMEOUT_S, f"{self.service.name}: the consumer")
            )
        if self._producer is not None:
            producer, self._producer = self._producer, None
            closing.append(producer.stop(CLOSE_TIMEOUT_S))
        for outcome in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(outcome, Exception):  # pragma: no cover
                log.error("%s: closing a Kafka client failed: %s", self.service.name, outcome)
        if self._store is not None:
            pipeline, self._pipeline = self._pipeline, None
            if pipeline is not None and pipeline.unmarked:
                try:
                    await pipeline.flush_sent()
                except Exception:  # pragma: no cover - they are resent after a restart
                    log.exception("%s: could not mark outbox rows sent", self.service.name)
            store = self._store
            self._store = None
            if self._owns_store:
                await asyncio.to_thread(store.close)

    async def _loop(self, consumer: AIOKafkaConsumer, pipeline: AckPipeline) -> None:
        try:
            while not self._stopping.is_set():
                self._fault.check()
                pipeline.advance()
                # Come back when the pipeline has something due (a commit, marking rows
                # sent), not every few milliseconds: a record arriving ends the wait anyway.
                batch = await consumer.getmany(
                    timeout_ms=pipeline.poll_timeout_ms(POLL_TIMEOUT_MS),
                    max_records=BATCH_MAX_RECORDS,
                )
                if batch:
                    began = time.monotonic()
                    linger = self._linger(batch, began)
                    if linger:
                        self._hold_fetches()
                    try:
                        async with pipeline.exclusive():
                            await self._process(batch, pipeline)
                        if linger:
                            await asyncio.sleep(linger - (time.monotonic() - began))
                    finally:
                        if linger:
                            self._release_fetches()
                elif pipeline.marking_due():
                    await pipeline.flush_sent()
                await self._housekeeping(pipeline)
            # Stopping: finish (or, with Kafka away, abandon) what is under way.
            await pipeline.settle()
        except BaseException:
            # Failing: what is under way may stop half done. Unsent outbox rows are sent after
            # the restart and uncommitted records redelivered, so nothing is lost.
            await pipeline.abandon()
            raise

    def _linger(self, batch: dict[TopicPartition, list[Any]], now: float) -> float:
        """Seconds to let the next batch gather after ``batch`` (``services/pacing.py``);
        0.0 for a service that is not paced, and after a batch that is running late."""
        if self._pacer is None:
            return 0.0
        linger = self._pacer.linger(sum(map(len, batch.values())), now)
        if linger:
            now_ms = time.time_ns() // 1_000_000
            records = (r for recs in batch.values() for r in recs)
            if oldest_order_age_s(records, now_ms) > LATE_S:
                return 0.0
        return linger

    def _hold_fetches(self) -> None:
        """Keep the consumer from fetching until the pacing cycle of this batch ends.

        Called right after ``getmany`` returned, with nothing awaited since, so the consumer's
        background fetcher has not asked for more yet. Left to itself it would at once: the
        broker answers as soon as one record arrives, that record or two wait out the cycle,
        and the next cycle applies them as a batch of their own (a transaction, a produce and
        a fetch for a sliver) while everything else that arrived waits one fetch longer.
        """
        assert self._consumer is not None
        self._consumer.pause(*self._consumer.assignment())

    def _release_fetches(self) -> None:
        """Undo :meth:`_hold_fetches`, unless the service was paused meanwhile."""
        if self._consumer is not None and not self.paused:
            self._consumer.resume(*self._consumer.assignment())

    async def _housekeeping(self, pipeline: AckPipeline) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_INTERVAL_S:
            self._last_sweep = now
            await pipeline.send_unsent(older_than_s=STALE_OUTBOX_S)
        if now - self._last_prune >= PRUNE_INTERVAL_S:
            self._last_prune = now
            assert self._calls is not None
            await self._calls(self._calls.store.prune_outbox)

    async def _process(self, batch: dict[TopicPartition, list[Any]], pipeline: AckPipeline) -> None:
        """Apply a batch in one transaction, then hand it to the pipeline to send and commit."""
        assert self._calls is not None
        records = [r for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]
        await self._fault.delay(len(records), self._stopping)  # a slow-down from the Chaos screen
        # Taken before the transaction: sends of earlier batches that finish meanwhile add
        # their ids afresh, for the next transaction.
        sent = pipeline.take_sent()
        try:
            result = await self._calls(self._applier.apply, self._calls.store, records, sent)
        except BaseException:
            pipeline.give_back_sent(sent)
            raise
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs}
        await pipeline.submit(offsets, result)
