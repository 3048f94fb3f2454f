"""Applying one batch of records to the store: decode, claim, handle, emit, dead-letter.

A batch is applied in ONE write transaction (``store.write()``); one per batch, not per
record, is what makes the pipeline fast. For each record: decode it (before the write lock is
taken: every process's writers queue on that lock, so what needs no database stays outside);
claim its ``eventId`` for this service by recording the journey hop (where the record sat in
Kafka) — if it was claimed before, this is a replay and nothing changes; otherwise apply the
handler's state change and append the outgoing events to the outbox.

Poison records — bytes that do not decode, an unknown type, a type that does not belong in
this inbox, or a record whose handler fails :data:`MAX_ATTEMPTS` times — are written (through
the same outbox) to ``<topic>.dlq`` with ``dlq-*`` headers plus the original headers, and the
partition moves on. A batch first runs without savepoints, so the common case costs nothing
extra; if a handler raises, the transaction is rolled back and the batch runs again with one
savepoint per record, so the failing record is retried and dead-lettered alone while the rest
of the batch commits.

Nothing here talks to Kafka: records come in as the consumer returned them (only their fields
are read) and what is to be sent leaves as outbox rows in a :class:`BatchResult`, which
``services/acks.py`` sends. The store's transient failures (what its ``is_transient`` says:
SQLite busy or locked, say) are retried by :class:`StoreCalls`, the whole batch at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from orderdeck.backoff import Backoff
from orderdeck.events import (
    Event,
    PoisonRecordError,
    TopicNames,
    decode_record,
    dlq_topic,
    encode,
    headers_for,
)
from orderdeck.services import FailureRecord, Service
from orderdeck.store.tx import Hop, StoreBackend, WriteTx
from orderdeck.store.views import OutboxRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: A store call that takes this long is stuck behind another writer (a batch takes ms).
STUCK_CALL_S = 5.0

T = TypeVar("T")


@dataclass
class BatchResult:
    """What applying a batch did: the outbox rows to send, and what to count and report."""

    outbox: list[OutboxRow] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    errors: int = 0
    failures: list[FailureRecord] = field(default_factory=list)


class BatchApplier:
    """Applies batches of one service's inbox records, each in one write transaction."""

    def __init__(self, service: Service, names: TopicNames) -> None:
        self.service = service
        self.names = names
        self.topic = names.resolve(service.inbox)

    def apply(
        self, store: StoreBackend, records: Sequence[Any], sent: Sequence[int]
    ) -> BatchResult:
        """Runs on the database thread: the whole batch in one write transaction.

        The batch is applied without savepoints first; if any handler raises, that
        transaction is rolled back and the batch is applied again with one savepoint per
        record (see the module docstring).

        ``sent`` are outbox rows of earlier batches that Kafka has acknowledged; marking them
        here saves a transaction per batch.
        """
        decoded = [(record, _decode(record.value)) for record in records]
        try:
            return self._apply_all(store, decoded, sent, isolate=False)
        except _HandlerFailed as failed:
            # The failed run counts as the record's first attempt.
            return self._apply_all(store, decoded, sent, isolate=True, failed_once=failed.index)

    def _apply_all(
        self,
        store: StoreBackend,
        decoded: Sequence[tuple[Any, Event | str]],
        sent: Sequence[int],
        isolate: bool,
        failed_once: int | None = None,
    ) -> BatchResult:
        result = BatchResult()
        with store.write() as tx:
            if sent:
                tx.mark_sent(sent)
            # Without savepoints a failure rolls the whole batch back, claims included, so
            # every record can be claimed up front at once; with them each record claims its
            # own, to be rolled back with it.
            claimed = None if isolate else self._claim_all(tx, decoded)
            for index, (record, event) in enumerate(decoded):
                tried = 1 if index == failed_once else 0
                result.errors += tried
                try:
                    self._apply_record(
                        tx, record, event, result, isolate, store.is_transient, tried, claimed
                    )
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
        result: BatchResult,
        isolate: bool,
        transient: Callable[[BaseException], bool],
        tried: int = 0,
        claimed: set[str] | None = None,
    ) -> None:
        """Apply one decoded record (``event`` is the reason when it did not decode).

        ``claimed``: the event ids :meth:`_claim_all` claimed for this batch and not yet used;
        None to claim each record as it is handled.
        """
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
                self._handle(tx, record, event, result, claimed)
            except Exception as exc:
                if transient(exc):
                    raise  # the whole batch is retried
                raise _HandlerFailed from exc
            return
        error: BaseException | None = None
        for _attempt in range(tried, MAX_ATTEMPTS):
            try:
                with tx.savepoint():
                    self._handle(tx, record, event, result)
                return
            except Exception as exc:
                if transient(exc):
                    raise  # the whole batch is retried
                error = exc
            result.errors += 1
            result.failures.append(self._failure(record, f"{type(error).__name__}: {error}", False))
        if error is None:  # pragma: no cover - MAX_ATTEMPTS >= 1
            error = RuntimeError("no attempt left")
        reason = f"handler failed {MAX_ATTEMPTS} times: {type(error).__name__}: {error}"
        self._dead_letter(tx, record, reason, result, event)

    def _handle(
        self,
        tx: WriteTx,
        record: Any,
        event: Event,
        result: BatchResult,
        claimed: set[str] | None = None,
    ) -> None:
        service = self.service
        if claimed is not None:
            fresh = event.eventId in claimed
            claimed.discard(event.eventId)  # a second copy in the batch is a duplicate
        else:
            fresh = self._claim(tx, record, event)
        if not fresh:
            result.duplicates += 1
            result.processed += 1
            return
        for out in service.handle(tx, event):
            self._emit(tx, out)
        result.processed += 1

    def _claim_all(self, tx: WriteTx, decoded: Sequence[tuple[Any, Event | str]]) -> set[str]:
        """Claim every handled event of the batch in one call; returns the ids claimed."""
        hops: dict[str, Hop] = {}
        for record, event in decoded:
            if isinstance(event, str) or event.type not in self.service.accepts:
                continue  # dead-lettered, not handled
            hops.setdefault(
                event.eventId,
                Hop(
                    order_id=event.orderId,
                    event_id=event.eventId,
                    event_type=event.type,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                ),
            )
        return tx.consume_all(self.service.name, list(hops.values()))

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
        result: BatchResult,
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


class StoreCalls:
    """Runs functions on the store's thread (``store.run``), retrying while it is busy.

    A busy or locked database is transient (another writer held it longer than the store
    waits; the backend's ``is_transient`` says which errors are), so the call is made again
    after a backoff. Once the worker is stopping it gives up after the delay passed a
    second, so a stop is not held up by a locked database.
    """

    def __init__(self, store: StoreBackend, stopping: asyncio.Event, name: str) -> None:
        self.store = store
        self._stopping = stopping
        self._name = name
        #: Calls retrying now because the database was busy.
        self.retrying = 0
        #: When each call under way began (a call is blocked inside the store for up to its
        #: busy timeout before the first retry).
        self._began: dict[object, float] = {}

    def stuck(self, now: float) -> bool:
        """Whether the service's work is stuck behind another writer of the database: a
        call retrying because it was busy, or one taking longer than STUCK_CALL_S. Then the
        service is ``waiting``, not ``running``."""
        return self.retrying > 0 or any(now - t >= STUCK_CALL_S for t in self._began.values())

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        backoff = Backoff.doubling(0.05, cap=2.0)
        busy = False
        token = object()
        self._began[token] = time.monotonic()
        try:
            while True:
                try:
                    return await self.store.run(fn, *args)
                except Exception as exc:
                    if not self.store.is_transient(exc) or (
                        self._stopping.is_set() and backoff.delay > 1
                    ):
                        raise
                    log.warning("%s: database busy (%s); retrying", self._name, exc)
                    if not busy:
                        busy = True
                        self.retrying += 1
                    await backoff.sleep()
        finally:
            del self._began[token]
            if busy:
                self.retrying -= 1


class _HandlerFailed(Exception):
    """A handler raised while the batch ran without savepoints: rerun it isolated."""

    index = -1  # position of the failing record in the batch


def _decode(value: bytes | None) -> Event | str:
    """:func:`decode_record`, or the reason the record is poison."""
    try:
        return decode_record(value)
    except PoisonRecordError as exc:
        return exc.reason
    except Exception as exc:  # e.g. RecursionError on absurdly nested JSON
        return f"undecodable: {type(exc).__name__}: {exc}"
