"""The acknowledgement pipeline: send a batch's outbox rows, then commit its offsets.

Once a batch's transaction committed (``services/batch.py``), its outbox rows are produced as
record batches and every ack is awaited (``acks=all``, idempotent producer); they are marked
sent in the next batch's transaction (or, once the worker is idle, :data:`MARK_SENT_WITHIN_S`
later in a transaction of their own). Only then are the consumer
offsets that cover the batch committed. This runs in the background while the next batches
are applied, so a record waits for a transaction, not for a whole send-ack-commit cycle:

* up to :data:`MAX_IN_FLIGHT` batches are being sent at once, handed to the producer in batch
  order;
* one offset commit at a time, started at most every :data:`COMMIT_INTERVAL_S` (at once when
  stopping or giving up partitions), covers every batch acknowledged since the last one, and
  never a batch whose predecessors are not acknowledged. Each commit is a broker round trip,
  and on a small machine broker requests are what latency depends on.

A crash between sending and committing loses nothing: the records are redelivered and
recognised as processed, and outgoing event ids are derived from the incoming one, so a
resent row is a harmless duplicate downstream. Outbox rows a crash (or a dead peer) left
unsent are sent by :meth:`AckPipeline.send_unsent`. A send or commit that fails ends the
worker (the supervisor restarts it); while stopping, one that Kafka does not answer within
:data:`STOP_SEND_GRACE_S` is given up (:class:`Abandoned`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from orderdeck.backoff import Backoff
from orderdeck.kafka.producer import EventProducer
from orderdeck.services import FailureRecord, ServiceCounters
from orderdeck.services.batch import BatchResult, StoreCalls
from orderdeck.store.views import OutboxRow

log = logging.getLogger(__name__)

#: Batches whose records may be being sent while the next one is applied.
MAX_IN_FLIGHT = 4
#: Offset commits of a worker start at most this often (and always when stopping or
#: giving up partitions): each commit costs the broker more CPU than a produce request
#: (BENCHMARKS.md, "Figures behind the code's choices"). A crash redelivers what the last
#: commit did not cover, and handlers recognise those records as processed.
COMMIT_INTERVAL_S = 0.5
#: Acknowledged outbox rows that no batch's transaction marked sent (the worker went idle)
#: are marked in one of their own this long after the first was acknowledged. Until then a
#: crash only means they are sent once more after the restart (a harmless duplicate); a
#: transaction per idle moment is what a trickle of batches of one record paid (issue 18).
MARK_SENT_WITHIN_S = 1.0
#: The shortest poll timeout :meth:`AckPipeline.poll_timeout_ms` gives, when something is due.
MIN_POLL_TIMEOUT_MS = 10
SEND_ATTEMPTS = 5
UNSENT_PAGE = 1000
#: How long a send or commit in flight may still take once a stop was requested.
STOP_SEND_GRACE_S = 0.5

T = TypeVar("T")


class Abandoned(Exception):
    """A send or commit was given up because the worker is stopping and Kafka is away."""


@dataclass
class _InFlight:
    """A batch applied to the store whose outgoing records are being sent."""

    sending: asyncio.Future[None]
    offsets: dict[TopicPartition, int]
    result: BatchResult


class AckPipeline:
    """Sends applied batches and commits their offsets, in order, in the background.

    One per worker. The worker hands each applied batch over with :meth:`submit` (inside
    :meth:`exclusive`), calls :meth:`advance` between polls, and :meth:`settle` or
    :meth:`abandon` at the end; the rebalance listener calls :meth:`drain` before partitions
    are taken away.
    """

    def __init__(
        self,
        name: str,
        *,
        producer: EventProducer,
        calls: StoreCalls,
        stopping: asyncio.Event,
        counters: ServiceCounters,
        on_failure: Callable[[FailureRecord], None] | None = None,
        on_batch: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._producer = producer
        self._calls = calls
        self._stopping = stopping
        self._counters = counters
        self._on_failure = on_failure
        self._on_batch = on_batch
        self._consumer: AIOKafkaConsumer | None = None
        #: Held while a batch is applied and handed over, and while partitions are drained.
        self._lock = asyncio.Lock()
        #: Batches whose transaction committed and whose records are being sent, oldest
        #: first; then offsets (and results) acknowledged but not committed yet, and the
        #: offset commit under way.
        self._in_flight: collections.deque[_InFlight] = collections.deque()
        self._acked: dict[TopicPartition, int] = {}
        self._acked_results: list[BatchResult] = []
        self._committing: asyncio.Future[None] | None = None
        self._commit_started = 0.0
        self._finish_error: BaseException | None = None
        #: Ids of outbox rows Kafka acknowledged that are not marked sent yet, and since when
        #: (monotonic) the oldest of them waits.
        self._sent_pending: list[int] = []
        self._pending_since = 0.0

    def commit_through(self, consumer: AIOKafkaConsumer) -> None:
        """The consumer whose offsets to commit. Given once it exists: the outbox rows a
        crash left unsent are sent before the consumer is made."""
        self._consumer = consumer

    # -- state

    @property
    def busy(self) -> bool:
        """Whether batches are being sent, or acknowledged offsets wait to be committed."""
        return bool(self._in_flight or self._acked or self._committing)

    @property
    def sending(self) -> bool:
        """Whether a batch's records are being sent."""
        return bool(self._in_flight)

    @property
    def unmarked(self) -> bool:
        """Whether acknowledged outbox rows are waiting to be marked sent."""
        return bool(self._sent_pending)

    def marking_due(self) -> bool:
        """Whether acknowledged rows waited MARK_SENT_WITHIN_S for a transaction to mark them
        (and no send under way will add more soon)."""
        return (
            bool(self._sent_pending)
            and not self._in_flight
            and time.monotonic() - self._pending_since >= MARK_SENT_WITHIN_S
        )

    def poll_timeout_ms(self, idle_ms: int) -> int:
        """How long the worker's next poll may wait: until the next offset commit or marking
        of sent rows is due, ``idle_ms`` when nothing is (a record arriving ends it sooner).

        Polls that come back every few milliseconds while sends are under way cost a wake-up
        each, and at a low rate they were a good part of a worker's CPU.
        """
        now = time.monotonic()
        due: list[float] = []
        if self._in_flight or self._acked:
            due.append(self._commit_started + COMMIT_INTERVAL_S)
        if self._sent_pending:
            due.append(self._pending_since + MARK_SENT_WITHIN_S)
        if not due:
            return idle_ms
        wait_ms = int((min(due) - now) * 1000)
        return max(MIN_POLL_TIMEOUT_MS, min(idle_ms, wait_ms))

    # -- handing batches over

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold off :meth:`drain` while a batch is applied and handed over with :meth:`submit`."""
        async with self._lock:
            yield

    def take_sent(self) -> list[int]:
        """The acknowledged outbox rows for the next transaction to mark sent.

        Sends that finish while it runs add their ids afresh, for the transaction after.
        """
        sent, self._sent_pending = self._sent_pending, []
        return sent

    def give_back_sent(self, sent: Sequence[int]) -> None:
        """Rows from :meth:`take_sent` that a transaction failed to mark."""
        if sent and not self._sent_pending:
            self._pending_since = time.monotonic()
        self._sent_pending[:0] = sent

    async def submit(self, offsets: dict[TopicPartition, int], result: BatchResult) -> None:
        """Start sending an applied batch; commit ``offsets`` once it and those before are acked.

        Returns at once unless MAX_IN_FLIGHT batches are being sent; then it waits for the
        oldest. Sends are created (and so started) in batch order, so they enter the
        producer in that order.
        """
        sending = asyncio.ensure_future(self._send(result.outbox))
        self._in_flight.append(_InFlight(sending, offsets, result))
        self.advance()
        while len(self._in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait({self._in_flight[0].sending})
            self.advance()

    def advance(self, force: bool = False) -> None:
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

    # -- ending

    async def drain(self) -> None:
        """Send and commit everything under way (partitions are being revoked).

        So the next owner of the partitions starts after the last processed record. A
        failure is not raised here but by the next :meth:`advance` (in the consume loop).
        """
        async with self._lock:
            self._advance_noting_failure()
            while self._in_flight or self._committing is not None:
                waiting = [b.sending for b in self._in_flight]
                if self._committing is not None:
                    waiting.append(self._committing)
                await asyncio.wait(waiting)
                self._advance_noting_failure()
                if self._finish_error is not None:
                    return

    async def settle(self) -> None:
        """Wait until every batch under way is sent and committed; raise the first failure."""
        while True:
            self.advance(force=True)
            waiting: list[asyncio.Future[Any]] = []
            if self._in_flight:
                waiting.append(self._in_flight[0].sending)
            if self._committing is not None:
                waiting.append(self._committing)
            if not waiting:
                return
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    async def abandon(self) -> None:
        """Cancel the sends and the commit under way (the worker is failing).

        Unsent outbox rows are sent after the restart and uncommitted records redelivered.
        """
        tasks = [b.sending for b in self._in_flight]
        if self._committing is not None:
            tasks.append(self._committing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()
        self._committing = None

    def _advance_noting_failure(self) -> None:
        try:
            self.advance(force=True)
        except BaseException as exc:  # raised again by the consume loop
            self._finish_error = exc

    # -- the outbox

    async def flush_sent(self) -> None:
        """Mark every acknowledged outbox row sent, in a transaction of its own."""
        sent, self._sent_pending = self._sent_pending, []
        await self._calls(self._calls.store.mark_sent, sent)

    async def send_unsent(self, older_than_s: float) -> None:
        """Produce outbox rows that a crash (or a dead peer) left unsent: one pass, oldest first.

        One pass, so that rows a live peer keeps writing are not chased forever.
        """
        after_id = 0
        while True:
            rows = await self._calls(
                self._calls.store.unsent_outbox, self.name, older_than_s, UNSENT_PAGE, after_id
            )
            if not rows:
                return
            log.info("%s: sending %d unsent outbox rows", self.name, len(rows))
            await self._send(rows)
            await self.flush_sent()
            if len(rows) < UNSENT_PAGE:
                return
            after_id = rows[-1].id

    async def _send(self, rows: Sequence[OutboxRow]) -> None:
        """Produce rows as record batches and await every ack (retrying transient errors).

        The rows are marked sent with the next batch's transaction, or after an idle poll. A
        crash before that only means they are sent once more after the restart.
        """
        if not rows:
            return
        records = [(r.topic, r.key, r.value, r.headers) for r in rows]
        backoff = Backoff.doubling(0.1, cap=2.0)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self._unless_stopped(self._producer.send_many(records))
                break
            except KafkaError as exc:
                if not exc.retriable or attempt == SEND_ATTEMPTS:
                    raise
                # Resending rows that did arrive is harmless: consumers skip known event ids.
                log.warning("%s: produce failed (%s); retrying", self.name, exc)
                await backoff.sleep()
        if not self._sent_pending:
            self._pending_since = time.monotonic()
        self._sent_pending.extend(r.id for r in rows)

    # -- offsets

    async def _commit_and_count(
        self, offsets: dict[TopicPartition, int], results: list[BatchResult]
    ) -> None:
        """Commit offsets covering acknowledged batches, then count those batches."""
        await self._commit(offsets)
        c = self._counters
        for result in results:
            c.processed += result.processed
            c.duplicates += result.duplicates
            c.errors += result.errors
            c.dead_letters += sum(1 for f in result.failures if f.dead_lettered)
            for failure in result.failures:
                log.warning(
                    "%s: %s %s[%d]@%d: %s",
                    self.name,
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

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if not offsets:
            return
        try:
            await self._unless_stopped(self._consumer.commit(offsets))
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced; the new owner redelivers these records and they are
            # recognised as processed.
            log.info("%s: commit skipped after rebalance: %s", self.name, exc)

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Await a Kafka call, but give up on it STOP_SEND_GRACE_S after a stop request.

        Sends and commits wait as long as Kafka is away (the producer retries, the commit
        looks for its coordinator); a stop must not. Raises Abandoned when given up.
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
                raise Abandoned
        return task.result()
