"""The loop every service runs: consume a batch -> one SQLite transaction -> produce -> commit.

Guarantees, and why the steps are in this order:

1. ``getmany`` returns a batch of records (auto-commit is off).
2. In ONE ``BEGIN IMMEDIATE`` transaction, for each record: decode it; claim its ``eventId``
   for this service by recording the journey hop (where the record sat in Kafka) — if it was
   claimed before, this is a replay and nothing changes; otherwise apply the handler's state
   change and append the outgoing events to the outbox. One transaction per batch, not per
   record, is what makes the pipeline fast.
3. After the commit, the batch's outbox rows are produced as record batches and every ack is
   awaited (``acks=all``, idempotent producer). They are marked sent in the next batch's
   transaction (or after an idle poll).
4. Only then are the consumer offsets committed.

Steps 3 and 4 of one batch run in the background while the next batches go through steps 1
and 2 (up to :data:`MAX_IN_FLIGHT` being sent; one offset commit at a time, covering every
batch acknowledged so far and never one whose predecessors are not), so a record waits for a
transaction, not for a whole send-ack-commit cycle. The order above still holds per batch.
Offset commits start at most every :data:`COMMIT_INTERVAL_S` (at once when stopping or giving
up partitions), and under load batches are paced (:data:`PACE_CYCLE_S`): both trade a few
milliseconds for fewer broker requests, which on a small machine is what latency depends on.

A crash between any two steps loses nothing: before 2 the records are redelivered; between 2
and 3 the outbox rows are still unsent and are produced when the service starts again (and by a
periodic sweep for rows a dead peer left behind); between 3 and 4 the records are redelivered
and recognised as processed. Downstream consumers are idempotent by event id, and outgoing
event ids are derived from the incoming one, so a resent row is a harmless duplicate.

Poison records — bytes that do not decode, an unknown type, a type that does not belong in
this inbox, or a record whose handler fails :data:`MAX_ATTEMPTS` times — are written (through
the same outbox) to ``<topic>.dlq`` with ``dlq-*`` headers plus the original headers, and the
partition moves on. A batch first runs without savepoints; if a handler raises, the
transaction is rolled back and the batch runs again with one savepoint per record, so the
failing record is retried and dead-lettered alone while the rest of the batch commits.
Transient failures (SQLite busy, retriable Kafka errors) are retried here with backoff;
anything else ends :meth:`ServiceWorker.run` with the exception so the supervisor restarts
the worker.

SQLite work runs on the store's own thread (see ``Store.run``; the workers of a process share
one store), so the event loop, which may also serve the API, never waits on the database; in a
process that only runs services it runs on the loop itself (``Store.run_inline``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import BaseModel, TypeAdapter, ValidationError

from orderdeck.events import (
    Event,
    PoisonRecordError,
    TopicNames,
    decode,
    dlq_topic,
    encode,
    headers_for,
)
from orderdeck.kafka.clients import new_consumer
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.producer import EventProducer, cancel_tasks, close_client, finish
from orderdeck.services import FailureRecord
from orderdeck.store import OutboxRow, Store, WriteTx

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
BATCH_MAX_RECORDS = 500
#: Batches whose records may be being sent while the next one is applied.
MAX_IN_FLIGHT = 4
#: The poll timeout while sends or an offset commit are under way.
BUSY_POLL_TIMEOUT_MS = 10
POLL_TIMEOUT_MS = 200
#: Offset commits of a worker start at most this often (and always when stopping or
#: giving up partitions). Each commit is a broker round trip that costs the local broker
#: more CPU than a produce request; at a steady 500 orders/s committing after every batch
#: was a seventh of its requests. A crash redelivers what the last commit did not
#: cover, and handlers recognise those records as processed.
COMMIT_INTERVAL_S = 0.25
#: Pacing under load: after a batch of at least PACE_MIN_RECORDS records, the next batch is
#: not taken until PACE_CYCLE_S after this one was, and the consumer does not fetch meanwhile
#: (:meth:`ServiceWorker._hold_fetches`): what arrived comes in one fetch when the cycle ends.
#: Much of a batch's cost does not depend on its size (a fetch, a transaction's COMMIT, a
#: produce request, the broker's handling of each), so on a busy machine fewer, larger batches
#: leave CPU for everything else: in back-to-back runs at 500 orders/s on 2 cores the API's
#: p99 went from about 32 ms to about 21, and holding the fetches took the accepted -> final
#: p50 from about 150-190 ms to 115-150 (BENCHMARKS.md has the runs). A trickle (batches of a
#: record or two) is never held back: at 20 orders/s the whole pipeline takes about 15 ms.
PACE_MIN_RECORDS = 8
PACE_CYCLE_S = 0.02
#: Unsent outbox rows older than this are swept up by any worker of the same service.
STALE_OUTBOX_S = 5.0
SWEEP_INTERVAL_S = 5.0
PRUNE_INTERVAL_S = 60.0
SEND_ATTEMPTS = 5
UNSENT_PAGE = 1000
#: How long stopping waits for the consumer to leave the group and for the producer to flush
#: (Kafka may be down); then they are closed by force. Both fit the supervisor's grace period.
CLOSE_TIMEOUT_S = 1.0
#: How long each forced closing step may take.
FORCE_CLOSE_S = 0.5
#: How long a send or commit in flight may still take once a stop was requested.
STOP_SEND_GRACE_S = 0.5
_OUT_KEY = b"orderdeck-derived-event-id"

T = TypeVar("T")
EventT = TypeVar("EventT", bound=BaseModel)


def derived_event_id(incoming_event_id: str, out_type: str) -> str:
    """The id of the event a handler emits for an incoming event: stable across retries.

    A name-based id: BLAKE2b of the incoming id and the outgoing type, in the usual
    8-4-4-4-12 form (cheaper than ``uuid.uuid5`` on the hot path). When the incoming id is
    time-ordered (a version 7 UUID, as the API makes them) the derived one keeps its
    48-bit timestamp, so every event of an order sorts next to the order in the store's
    indexes (see ``events.time_ordered_uuid``).
    """
    h = hashlib.blake2b(
        f"{incoming_event_id}:{out_type}".encode(), digest_size=16, key=_OUT_KEY
    ).hexdigest()
    if len(incoming_event_id) == 36 and incoming_event_id[14] == "7":
        stamp = incoming_event_id[:8] + incoming_event_id[9:13]
        variant = "89ab"[int(h[16], 16) & 3]  # RFC 9562 variant bits
        return f"{stamp[:8]}-{stamp[8:]}-7{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def reply_to(cause: Event, out_type: type[EventT], payload: Any) -> EventT:
    """The event a handler emits in answer to ``cause``: same order and correlation id, and
    an id derived from the cause's so that a retried handler emits the very same event."""
    type_name = _TYPE_NAMES.get(out_type)
    if type_name is None:
        type_name = _TYPE_NAMES[out_type] = out_type.model_fields["type"].default
    # Validating is cheaper than it looks (pydantic-core, and the payload model is taken as
    # is); model_construct runs in Python and costs about four times as much.
    return out_type(
        eventId=derived_event_id(cause.eventId, type_name),
        orderId=cause.orderId,
        correlationId=cause.orderId,
        payload=payload,
    )


_TYPE_NAMES: dict[type[BaseModel], str] = {}


async def close_consumer(consumer: AIOKafkaConsumer, grace: float, name: str) -> None:
    """Stop ``consumer`` (commit nothing more, leave the group) within about ``grace`` seconds.

    aiokafka's stop waits for the group coordinator, forever while Kafka is unreachable.
    After that (or when the caller is cancelled) its background tasks are cancelled
    and its connections closed, so nothing is left running; offsets were committed after
    each batch, so nothing is lost, and the group evicts the member after its session timeout.
    """
    # aiokafka forgets its metadata task once it has tried to cancel it, even when that
    # routine swallowed the cancellation (it can, while reconnecting): keep hold of it.
    metadata_task = consumer._client._sync_task
    stopping = asyncio.ensure_future(consumer.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=grace)
    except asyncio.CancelledError:
        await finish(_force_close_consumer(consumer, stopping, metadata_task))
        raise
    if stopping in done and not stopping.cancelled() and stopping.exception() is None:
        await cancel_tasks([metadata_task], FORCE_CLOSE_S)
        return
    # Timed out, or aiokafka's stop broke off half way (with Kafka away its coordinator can
    # end cancelled, and stop() then raises CancelledError before closing the client).
    log.warning("%s: the consumer did not stop cleanly; closing it", name)
    await finish(_force_close_consumer(consumer, stopping, metadata_task))


async def _force_close_consumer(
    consumer: AIOKafkaConsumer,
    stopping: asyncio.Future[Any],
    metadata_task: asyncio.Future[Any] | None,
) -> None:
    # Cancelling the stop cancels whatever it awaits (the coordination routine); then every
    # background task of the consumer goes, then its connections.
    coordinator = consumer._coordinator
    tasks: list[asyncio.Future[Any] | None] = [stopping, metadata_task]
    for attr in (
        "_coordination_task",
        "_heartbeat_task",
        "_commit_refresh_task",
        "_reset_committed_task",
    ):
        tasks.append(getattr(coordinator, attr, None))
    fetcher = consumer._fetcher
    if fetcher is not None:
        tasks.append(fetcher._fetch_task)
        tasks.extend(fetcher._pending_tasks)
    await cancel_tasks(tasks, FORCE_CLOSE_S)
    await close_client(consumer._client)


class Service(ABC):
    """One step of the pipeline: which inbox it reads and what it does with each event."""

    #: Service name, one of ``SERVICE_NAMES``.
    name: str
    #: Logical inbox topic (``order-events``, ...).
    inbox: str
    #: Event types that belong in the inbox; anything else is dead-lettered.
    accepts: frozenset[str]

    @abstractmethod
    def handle(self, tx: WriteTx, event: Any) -> Sequence[Any]:
        """Apply ``event`` inside ``tx`` and return the events to emit (may be empty).

        Runs on the worker's database thread. Must be deterministic given the database state:
        it may run again after a rollback.
        """


@dataclass
class ServiceCounters:
    """Counters shared by every instance of a service (they survive restarts)."""

    processed: int = 0
    duplicates: int = 0
    errors: int = 0
    dead_letters: int = 0


@dataclass
class _InFlight:
    """A batch applied to the store whose outgoing records are being sent."""

    sending: asyncio.Future[None]
    offsets: dict[TopicPartition, int]
    result: _BatchResult


@dataclass
class _BatchResult:
    outbox: list[OutboxRow] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    errors: int = 0
    failures: list[FailureRecord] = field(default_factory=list)


_EVENTS: TypeAdapter[Event] = TypeAdapter(Event)


def decode_record(value: bytes | None) -> Event:
    """``events.decode`` with a fast path: pydantic parses the JSON bytes itself.

    Anything the fast path refuses (a legacy-shape order, a poison record) goes through
    ``events.decode``, which converts it or raises PoisonRecordError with the reason.
    """
    if value is not None:
        try:
            return _EVENTS.validate_json(value)
        except ValidationError:
            pass
    return decode(value)


def _decode(value: bytes | None) -> Event | str:
    """:func:`decode_record`, or the reason the record is poison."""
    try:
        return decode_record(value)
    except PoisonRecordError as exc:
        return exc.reason
    except Exception as exc:  # e.g. RecursionError on absurdly nested JSON
        return f"undecodable: {type(exc).__name__}: {exc}"


class _Abandoned(Exception):
    """A send or commit was given up because the worker is stopping and Kafka is away."""


class _HandlerFailed(Exception):
    """A handler raised while the batch ran without savepoints: rerun it isolated."""

    index = -1  # position of the failing record in the batch


def _is_transient_sqlite(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: ServiceWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Batches in flight commit their offsets as their last step; wait for them so the
        # next owner of these partitions starts after our last processed record.
        worker = self._worker
        async with worker._batch_lock:
            # Send and commit what is under way (a failure is raised by the consume loop).
            worker._advance_noting_failure()
            while worker._in_flight or worker._committing is not None:
                waiting = [b.sending for b in worker._in_flight]
                if worker._committing is not None:
                    waiting.append(worker._committing)
                await asyncio.wait(waiting)
                worker._advance_noting_failure()
                if worker._finish_error is not None:
                    return

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        worker = self._worker
        worker.assigned = frozenset(assigned)
        if worker.paused and assigned and worker._consumer is not None:
            worker._consumer.pause(*assigned)
        worker.joined.set()


class ServiceWorker:
    """One consumer instance of a service (several may share the group)."""

    def __init__(
        self,
        service: Service,
        *,
        kafka: KafkaConnection,
        store_path: Path,
        names: TopicNames,
        counters: ServiceCounters | None = None,
        instance: int = 0,
        paused: bool = False,
        on_failure: Callable[[FailureRecord], None] | None = None,
        on_batch: Callable[[], None] | None = None,
        store: Store | None = None,
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.store_path = store_path
        self.names = names
        self.topic = names.resolve(service.inbox)
        self.group = self.topic
        self.counters = counters or ServiceCounters()
        self.instance = instance
        self.paused = paused
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.joined = asyncio.Event()
        self._on_failure = on_failure
        self._on_batch = on_batch
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        #: Batches whose transaction committed and whose records are being sent, oldest
        #: first; then offsets (and results) acknowledged but not committed yet, and the
        #: offset commit under way (see _process).
        self._in_flight: collections.deque[_InFlight] = collections.deque()
        self._acked: dict[TopicPartition, int] = {}
        self._acked_results: list[_BatchResult] = []
        self._committing: asyncio.Future[None] | None = None
        self._commit_started = 0.0
        self._finish_error: BaseException | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: EventProducer | None = None
        # A shared store (the supervisor's) is used as is; otherwise the worker opens its own.
        self._store: Store | None = store
        self._owns_store = store is None
        self._last_sweep = 0.0
        self._sent_pending: list[int] = []
        self._last_prune = 0.0

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

    # -- lifecycle

    async def run(self) -> None:
        """Consume until :meth:`request_stop`; raises on a failure the supervisor must handle."""
        try:
            if self._store is None:
                self._store = await asyncio.to_thread(Store, self.store_path)
            self._producer = EventProducer(self.kafka, client_suffix=f"{self.service.name}-out")
            await self._producer.start()
            await self._send_unsent(older_than_s=0.0)
            self._last_sweep = self._last_prune = time.monotonic()
            self._consumer = new_consumer(
                self.kafka,
                group_id=self.group,
                client_suffix=f"{self.service.name}-{self.instance}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Long poll: the broker answers as soon as a record arrives, so a long wait
                # costs no latency and keeps an idle pipeline from spinning.
                fetch_max_wait_ms=500,
                max_poll_records=BATCH_MAX_RECORDS,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                request_timeout_ms=10_000,
            )
            self._consumer.subscribe([self.topic], listener=_Rebalance(self))
            await self._consumer.start()
            await self._loop()
        except _Abandoned:
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
            closing.append(close_consumer(consumer, CLOSE_TIMEOUT_S, self.service.name))
        if self._producer is not None:
            producer, self._producer = self._producer, None
            closing.append(producer.stop(CLOSE_TIMEOUT_S))
        for outcome in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(outcome, Exception):  # pragma: no cover
                log.error("%s: closing a Kafka client failed: %s", self.service.name, outcome)
        if self._store is not None:
            if self._sent_pending:
                try:
                    await self._flush_sent()
                except Exception:  # pragma: no cover - they are resent after a restart
                    log.exception("%s: could not mark outbox rows sent", self.service.name)
            store = self._store
            self._store = None
            if self._owns_store:
                await asyncio.to_thread(store.close)

    async def _loop(self) -> None:
        assert self._consumer is not None
        try:
            while not self._stopping.is_set():
                self._advance()
                # While batches are under way, come back soon to commit what was acked.
                busy = bool(self._in_flight or self._acked or self._committing)
                batch = await self._consumer.getmany(
                    timeout_ms=BUSY_POLL_TIMEOUT_MS if busy else POLL_TIMEOUT_MS,
                    max_records=BATCH_MAX_RECORDS,
                )
                if batch:
                    began = time.monotonic()
                    # Under load: let the next batch gather (see PACE_CYCLE_S). A full batch
                    # means a backlog: what the fetcher already holds is wanted at once.
                    size = sum(map(len, batch.values()))
                    paced = size >= PACE_MIN_RECORDS
                    held = paced and size < BATCH_MAX_RECORDS
                    if held:
                        self._hold_fetches()
                    try:
                        async with self._batch_lock:
                            await self._process(batch)
                        if paced:
                            await asyncio.sleep(PACE_CYCLE_S - (time.monotonic() - began))
                    finally:
                        if held:
                            self._release_fetches()
                elif self._sent_pending and not self._in_flight:
                    await self._flush_sent()
                await self._housekeeping()
            # Stopping: finish (or, with Kafka away, abandon) what is under way.
            await self._settle()
        except BaseException:
            # Failing: what is under way may stop half done. Unsent outbox rows are sent after
            # the restart and uncommitted records redelivered, so nothing is lost.
            await self._abandon_in_flight()
            raise

    def _hold_fetches(self) -> None:
        """Keep the consumer from fetching until the pacing cycle of this batch ends.

        Called right after ``getmany`` returned, with nothing awaited since, so the consumer's
        background fetcher has not asked for more yet. Left to itself it would at once: the
        broker answers as soon as one record arrives, that record or two wait out the cycle,
        and the next cycle applies them as a batch of their own (a transaction, a produce and
        a fetch for a sliver) while everything else that arrived waits one fetch longer. At
        500 orders/s a quarter of all batches were such slivers.
        """
        assert self._consumer is not None
        self._consumer.pause(*self._consumer.assignment())

    def _release_fetches(self) -> None:
        """Undo :meth:`_hold_fetches`, unless the service was paused meanwhile."""
        if self._consumer is not None and not self.paused:
            self._consumer.resume(*self._consumer.assignment())

    async def _abandon_in_flight(self) -> None:
        tasks = [b.sending for b in self._in_flight]
        if self._committing is not None:
            tasks.append(self._committing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        self._committing = None

    def _advance(self, force: bool = False) -> None:
        """Move acknowledged batches (oldest first) to the offsets to commit; start a commit
        (once COMMIT_INTERVAL_S has passed since the last one began, or at once with ``force``).

        Raises the first send or commit failure: the worker then stops and is restarted.
        """
        if self._finish_error is not None:
            raise self._finish_error
        while self._in_flight and self._in_flight[0].sending.done():
            done = self._in_flight.popleft()
            done.sending.result()
            # Batches are applied in order, so a later batch's offset of a partition is the
            # higher one: merging keeps, per partition, the end of everything acknowledged.
            self._acked.update(done.offsets)
            self._acked_results.append(done.result)
        if self._committing is not None and self._committing.done():
            committing, self._committing = self._committing, None
            committing.result()
        if (
            self._acked
            and self._committing is None
            and (force or time.monotonic() - self._commit_started >= COMMIT_INTERVAL_S)
        ):
            self._commit_started = time.monotonic()
            offsets, results = self._acked, self._acked_results
            self._acked, self._acked_results = {}, []
            self._committing = asyncio.ensure_future(self._commit_and_count(offsets, results))

    def _advance_noting_failure(self) -> None:
        try:
            self._advance(force=True)
        except BaseException as exc:  # raised again by the consume loop
            self._finish_error = exc

    async def _settle(self) -> None:
        """Wait until every batch under way is sent and committed; raise the first failure."""
        while True:
            self._advance(force=True)
            waiting: list[asyncio.Future[Any]] = []
            if self._in_flight:
                waiting.append(self._in_flight[0].sending)
            if self._committing is not None:
                waiting.append(self._committing)
            if not waiting:
                return
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_INTERVAL_S:
            self._last_sweep = now
            await self._send_unsent(older_than_s=STALE_OUTBOX_S)
        if now - self._last_prune >= PRUNE_INTERVAL_S:
            self._last_prune = now
            assert self._store is not None
            await self._with_retry(self._store.prune_outbox)

    # -- one batch

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a batch in one transaction, then send and commit it in the background.

        The next batch's transaction does not wait for this one's acks and offset commit
        (each takes a broker round trip): up to MAX_IN_FLIGHT batches are being sent at once,
        and one offset commit at a time covers every batch acknowledged since the last, so
        each record waits in Kafka for about one transaction rather than for a whole
        send-ack-commit cycle. Order is kept where it matters: batches are handed to the
        producer in batch order, and offsets only ever cover batches whose records were
        acknowledged, together with every batch before them (a crash before the commit
        redelivers records, and they are recognised as processed).
        """
        records = [r for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]
        # Taken before the transaction: sends of earlier batches that finish meanwhile add
        # their ids to the fresh list, for the next transaction.
        sent, self._sent_pending = self._sent_pending, []
        try:
            result = await self._with_retry(self._apply_batch, records, sent)
        except BaseException:
            self._sent_pending[:0] = sent
            raise
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs}
        # Created (and so started) in batch order: sends enter the producer in that order.
        sending = asyncio.ensure_future(self._send(result.outbox))
        self._in_flight.append(_InFlight(sending, offsets, result))
        self._advance()
        while len(self._in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait({self._in_flight[0].sending})
            self._advance()

    async def _commit_and_count(
        self, offsets: dict[TopicPartition, int], results: list[_BatchResult]
    ) -> None:
        """Commit offsets covering acknowledged batches, then count those batches."""
        await self._commit(offsets)
        c = self.counters
        for result in results:
            c.processed += result.processed
            c.duplicates += result.duplicates
            c.errors += result.errors
            c.dead_letters += sum(1 for f in result.failures if f.dead_lettered)
            for failure in result.failures:
                log.warning(
                    "%s: %s %s[%d]@%d: %s",
                    self.service.name,
                    "dead-lettered" if failure.dead_lettered else "failed",
                    failure.topic,
                    failure.partition,
                    failure.offset,
                    failure.reason,
                )
                if self._on_failure is not None:
                    self._on_failure(failure)
        if self._on_batch is not None:
            self._on_batch()

    def _apply_batch(self, records: Sequence[Any], sent: Sequence[int]) -> _BatchResult:
        """Runs on the database thread: the whole batch in one write transaction.

        The records are decoded first, before the write lock is taken: every process's
        writers queue on that lock, so what needs no database stays outside it.

        The batch is then applied without savepoints (the common case costs nothing extra).
        If any handler raises, that transaction is rolled back and the batch is applied again
        with one savepoint per record, so the failing record is retried and dead-lettered
        alone while the rest of the batch commits.

        ``sent`` are outbox rows of earlier batches that Kafka has acknowledged; marking them
        here saves a transaction per batch.
        """
        assert self._store is not None
        decoded = [(record, _decode(record.value)) for record in records]
        try:
            return self._apply_all(decoded, sent, isolate=False)
        except _HandlerFailed as failed:
            # The failed run counts as the record's first attempt.
            return self._apply_all(decoded, sent, isolate=True, failed_once=failed.index)

    def _apply_all(
        self,
        decoded: Sequence[tuple[Any, Event | str]],
        sent: Sequence[int],
        isolate: bool,
        failed_once: int | None = None,
    ) -> _BatchResult:
        assert self._store is not None
        result = _BatchResult()
        with self._store.write() as tx:
            if sent:
                tx.mark_sent(sent)
            for index, (record, event) in enumerate(decoded):
                tried = 1 if index == failed_once else 0
                result.errors += tried
                try:
                    self._apply_record(tx, record, event, result, isolate, tried)
                except _HandlerFailed as failed:
                    failed.index = index
                    raise
            result.outbox = list(tx.outbox)
        return result

    def _apply_record(
        self,
        tx: WriteTx,
        record: Any,
        event: Event | str,
        result: _BatchResult,
        isolate: bool,
        tried: int = 0,
    ) -> None:
        """Apply one decoded record (``event`` is the reason when it did not decode)."""
        service = self.service
        if isinstance(event, str):
            self._dead_letter(tx, record, event, result)
            return
        if event.type not in service.accepts:
            reason = f"event type {event.type} does not belong in {self.topic}"
            self._dead_letter(tx, record, reason, result)
            return
        if not isolate:
            try:
                self._handle(tx, record, event, result)
            except sqlite3.OperationalError as exc:
                if _is_transient_sqlite(exc):
                    raise
                raise _HandlerFailed from exc
            except Exception as exc:
                raise _HandlerFailed from exc
            return
        error: BaseException | None = None
        for _attempt in range(tried, MAX_ATTEMPTS):
            try:
                with tx.savepoint():
                    self._handle(tx, record, event, result)
                return
            except sqlite3.OperationalError as exc:
                if _is_transient_sqlite(exc):
                    raise  # the whole batch is retried
                error = exc
            except Exception as exc:
                error = exc
            result.errors += 1
            result.failures.append(self._failure(record, f"{type(error).__name__}: {error}", False))
        if error is None:  # pragma: no cover - MAX_ATTEMPTS >= 1
            error = RuntimeError("no attempt left")
        reason = f"handler failed {MAX_ATTEMPTS} times: {type(error).__name__}: {error}"
        self._dead_letter(tx, record, reason, result, event)

    def _handle(self, tx: WriteTx, record: Any, event: Event, result: _BatchResult) -> None:
        service = self.service
        if not self._claim(tx, record, event):
            result.duplicates += 1
            result.processed += 1
            return
        for out in service.handle(tx, event):
            self._emit(tx, out)
        result.processed += 1

    def _claim(self, tx: WriteTx, record: Any, event: Event) -> bool:
        """Record the journey hop that marks ``event`` processed; False if it already was."""
        return tx.consume(
            self.service.name,
            order_id=event.orderId,
            event_id=event.eventId,
            event_type=event.type,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )

    def _emit(self, tx: WriteTx, event: Event) -> None:
        tx.add_outbox(
            self.service.name,
            self.names.resolve(event.topic),
            event.orderId.encode(),
            encode(event),
            headers_for(event),
        )

    def _dead_letter(
        self,
        tx: WriteTx,
        record: Any,
        reason: str,
        result: _BatchResult,
        event: Event | None = None,
    ) -> None:
        # Marked processed under its position so a replay of the same record (an offset
        # reset) does not dead-letter it a second time.
        position = f"dlq:{record.topic}:{record.partition}:{record.offset}"
        with tx.savepoint():
            if not tx.mark_processed(self.service.name, position):
                result.duplicates += 1
                return
            if event is not None:
                # The event itself is settled too: redelivery must not retry it.
                self._claim(tx, record, event)
            headers = [
                ("dlq-reason", reason.encode()),
                ("dlq-original-topic", record.topic.encode()),
                ("dlq-original-partition", str(record.partition).encode()),
                ("dlq-original-offset", str(record.offset).encode()),
                ("dlq-service", self.service.name.encode()),
                *[(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq-")],
            ]
            tx.add_outbox(
                self.service.name, dlq_topic(record.topic), record.key, record.value, headers
            )
        result.failures.append(self._failure(record, reason, True))

    def _failure(self, record: Any, reason: str, dead_lettered: bool) -> FailureRecord:
        return FailureRecord(
            at=datetime.now(UTC),
            service=self.service.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            dead_lettered=dead_lettered,
        )

    # -- after the transaction

    async def _send(self, rows: Sequence[OutboxRow]) -> None:
        """Produce rows as record batches and await every ack (retrying transient errors).

        The rows are marked sent with the next batch's transaction, or after an idle poll. A
        crash before that only means they are sent once more after the restart.
        """
        if not rows:
            return
        assert self._producer is not None
        records = [(r.topic, r.key, r.value, r.headers) for r in rows]
        delay = 0.1
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self._unless_stopped(self._producer.send_many(records))
                break
            except KafkaError as exc:
                if not exc.retriable or attempt == SEND_ATTEMPTS:
                    raise
                # Resending rows that did arrive is harmless: consumers skip known event ids.
                log.warning("%s: produce failed (%s); retrying", self.service.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._sent_pending.extend(r.id for r in rows)

    async def _flush_sent(self) -> None:
        assert self._store is not None
        sent, self._sent_pending = self._sent_pending, []
        await self._with_retry(self._store.mark_sent, sent)

    async def _send_unsent(self, older_than_s: float) -> None:
        """Produce outbox rows that a crash (or a dead peer) left unsent: one pass, oldest first.

        One pass, so that rows a live peer keeps writing are not chased forever.
        """
        assert self._store is not None
        after_id = 0
        while True:
            rows = await self._with_retry(
                self._store.unsent_outbox, self.service.name, older_than_s, UNSENT_PAGE, after_id
            )
            if not rows:
                return
            log.info("%s: sending %d unsent outbox rows", self.service.name, len(rows))
            await self._send(rows)
            await self._flush_sent()
            if len(rows) < UNSENT_PAGE:
                return
            after_id = rows[-1].id

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if not offsets:
            return
        try:
            await self._unless_stopped(self._consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced; the new owner redelivers these records and they are
            # recognised as processed.
            log.info("%s: commit skipped after rebalance: %s", self.service.name, exc)

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Await a Kafka call, but give up on it STOP_SEND_GRACE_S after a stop request.

        Sends and commits wait as long as Kafka is away (the producer retries, the commit
        looks for its coordinator); a stop must not. Raises _Abandoned when given up.
        """
        task = asyncio.ensure_future(work)
        if not task.done():
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not task.done():
                    await asyncio.wait({task}, timeout=STOP_SEND_GRACE_S)
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise _Abandoned
        return task.result()

    # -- database thread

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._store is not None
        return await self._store.run(fn, *args)

    async def _with_retry(self, fn: Callable[..., T], *args: Any) -> T:
        delay = 0.05
        while True:
            try:
                return await self._db(fn, *args)
            except sqlite3.OperationalError as exc:
                if not _is_transient_sqlite(exc) or (self._stopping.is_set() and delay > 1):
                    raise
                log.warning("%s: database busy (%s); retrying", self.service.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
