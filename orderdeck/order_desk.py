"""The order desk: the one path from a validated order to Kafka, and what it remembers.

Both doors into the pipeline — ``POST /api/v1/orders`` and the TUI's submit form (through
``Runtime.submit_order``) — go through :meth:`OrderDesk.place_order`, so an order is checked,
produced and recorded the same way whoever sends it.

Order of events for one order: check every product against the catalog, produce
``OrderPlaced`` and wait (bounded) for the broker's ``acks=all`` acknowledgement, then record
the order as ``placed`` (or, without an Idempotency-Key, keep it in memory until it is
recorded; see :class:`_PlacedWriter`) so a GET works at once.

**Read-your-writes from any API process.** A key-less order is answered 201 before any
database write: the order service records it from Kafka moments later, and this desk's
write-behind records it itself after :data:`RECORD_DELAY_S` if the order service has not. So
for a short while only the accepting process knows it, and another API process on a shared
(PostgreSQL) store would answer 404. Writing every order before its 201 would close that gap
at the price of one commit per POST (batched, but on the API's latency path, and twice the
order rows' writes under load); instead the gap has a documented bound:
:data:`VISIBLE_WITHIN_S`, the write-behind's deadline (delay, period, and one write's time).
A GET that misses the store and this desk's memory for a well-formed UUIDv7 id whose
millisecond timestamp is no older than that bound re-reads the store until the id's
timestamp plus the bound (:meth:`OrderDesk.find_order`) before answering 404; in practice it
answers as soon as the order service committed the order, tens of milliseconds. An id that is
old, random or not a UUIDv7 answers 404 at once, and at most :data:`MAX_WAITING_READS` GETs
wait at a time, so a flood of made-up fresh ids cannot pile up store reads. The bound reads
the id's clock against this host's: hosts keep their clocks in step (NTP), and an id up to
:data:`CLOCK_SKEW_S` in the future is still waited for. An accepting process that dies
takes its write-behind with it, never the order: Kafka holds it, and it appears once an order
service consumes it.

The state this needs (the Idempotency-Key locks, the write-behind writer, the cached catalog)
belongs to one :class:`OrderDesk`, which the runtime creates beside its store and producer and
closes before the store; nothing is kept at module level, so two desks (two tests, two
runtimes) never share anything.

Two guarantees shape the code:

* **503 means no order.** When Kafka does not acknowledge within the bound, the record may
  still be sitting in the producer (the idempotent producer never gives up on a batch) and be
  written later. So before answering 503 the event is *fenced*: marked processed for the order
  service in the store, in one transaction. If that succeeds, the order service will treat the
  late record as a replay and create nothing; if the order service got there first, the order
  exists and the answer is 201 after all.
* **One order per Idempotency-Key.** The order id is derived from the key (uuid5), and the
  store accepts one OrderPlaced per order id, so even a crash between the ack and saving the
  key, followed by a retry, cannot create a second order. The event id is fresh per attempt:
  a retry after a fenced (503) attempt must not be mistaken for that dead attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orderdeck.events import OrderPlaced, TopicNames
from orderdeck.fenced import FencedEvents
from orderdeck.orders import (
    DEFAULT_ACK_TIMEOUT_S,
    PLACED_STATUS,
    IdempotencyConflictError,
    OrderCreated,
    OrderNotAcknowledgedError,
    OrderRequest,
    OrderValidationError,
    SubmittedOrder,
    build_order_placed,
    check_idempotency_key,
    check_products,
    created_response,
)

if TYPE_CHECKING:
    from orderdeck.kafka.producer import Delivery, EventProducer
    from orderdeck.store import OrderView, StoreBackend, WriteTx

log = logging.getLogger("orderdeck.orders")

#: The order service's name in the store's processed-events table (see fence_event).
ORDER_SERVICE = "order"
#: How long after a key-less order's 201 the API records it if the order service has not.
RECORD_DELAY_S = 2.0
RECORD_EVERY_S = 0.5
#: By this long after its id's timestamp an accepted order is in the store: the write-behind's
#: delay and period plus room for its write. A GET that misses waits up to it (find_order).
VISIBLE_WITHIN_S = RECORD_DELAY_S + RECORD_EVERY_S + 0.5
#: How far in the future (another host's clock running ahead) a fresh id's timestamp may be.
CLOCK_SKEW_S = 1.0
#: GETs that may wait for a fresh id at once; the next ones answer from the store as it is.
MAX_WAITING_READS = 256
_FIRST_REREAD_S = 0.01
_LAST_REREAD_S = 0.1
#: How long the catalog's product ids are trusted before they are read again.
CATALOG_TTL_S = 2.0


class OrderDesk:
    """Takes orders for one process: places them and answers for those not recorded yet.

    Built around an open store and a started producer (the caller owns both and closes them);
    :meth:`aclose` records what is still only in memory and must run before the store closes.
    """

    def __init__(
        self,
        store: StoreBackend,
        producer: EventProducer,
        names: TopicNames,
        *,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
        fenced: FencedEvents | None = None,
    ) -> None:
        self.store = store
        self.producer = producer
        self.names = names
        #: The events this desk fenced after a 503, for the Topics tail to mark (see fenced.py).
        self.fenced = fenced if fenced is not None else FencedEvents()
        #: The bound on the wait for Kafka's acknowledgement of an OrderPlaced.
        self.ack_timeout = ack_timeout
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._writer = _PlacedWriter(store)
        self._waiting_reads = 0
        #: (monotonic time read, price by product id) of the catalog, or None before a read.
        self._catalog: tuple[float, dict[str, int]] | None = None
        self._catalog_refresh: asyncio.Task[None] | None = None

    async def place_order(
        self, request: OrderRequest, *, idempotency_key: str | None = None
    ) -> SubmittedOrder:
        """Check, produce and record one order; the API and the TUI both come through here.

        Raises OrderValidationError (unknown product, bad key), IdempotencyConflictError (key
        reused with a different request) or OrderNotAcknowledgedError (Kafka did not ack
        within ``ack_timeout``).
        """
        # Every store call runs on the store's database thread (Store.run): a write may wait
        # for SQLite's lock while a service (in this process or another) commits a batch, and
        # the event loop that serves the API and runs the services must never wait with it.
        await self._check_catalog(request)
        key = check_idempotency_key(idempotency_key)
        if key is None:
            return await self._place(request, None, "")
        fingerprint = request.fingerprint()
        async with self._key_lock(key):
            earlier = await self.store.run(_replay, key, fingerprint, self.store)
            if earlier is not None:
                return earlier
            return await self._place(request, key, fingerprint)

    async def find_order(self, order_id: str) -> OrderView | None:
        """One order as ``Store.get_order`` has it, or as just accepted by this desk.

        An order answered with 201 but not yet committed by the write-behind (see
        _PlacedWriter) is shown as ``placed``, priced from the catalog, with its OrderPlaced hop.
        An order another process accepted a moment ago is waited for, within
        :data:`VISIBLE_WITHIN_S` of its id's timestamp (see the module docstring).
        """
        view = await self.store.run(self.store.get_order, order_id)
        if view is not None:
            return view
        entry = self._writer.unrecorded.get(order_id)
        delivery = entry[0].delivery if entry is not None else None
        if entry is not None and delivery is not None:
            prices = self._catalog[1] if self._catalog is not None else {}
            return _unrecorded_view(entry[0].event, delivery, prices)
        wait = fresh_id_wait(order_id, time.time())
        if wait <= 0 or self._waiting_reads >= MAX_WAITING_READS:
            return None
        self._waiting_reads += 1
        try:
            deadline = time.monotonic() + wait
            pause = _FIRST_REREAD_S
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, _LAST_REREAD_S)
                view = await self.store.run(self.store.get_order, order_id)
                if view is not None:
                    return view
            return None
        finally:
            self._waiting_reads -= 1

    async def flush(self) -> None:
        """Record the orders this desk accepted that the store does not know yet.

        For a clean stop: they would be recorded by the order service anyway, but a GET after
        the restart should not have to wait for it.
        """
        await self._writer.flush()

    async def aclose(self) -> None:
        """Flush, then end the writer's tasks and a catalog re-read (before the store closes)."""
        await self.flush()
        await self._writer.aclose()
        if self._catalog_refresh is not None:
            await asyncio.gather(self._catalog_refresh, return_exceptions=True)

    @asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        """Serialise requests that share an Idempotency-Key inside this process.

        Two concurrent requests with one key would otherwise both produce; the lock makes the
        second see the first one's stored answer. Locks are dropped once nobody holds them.
        """
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._key_locks.get(key) is lock:
                del self._key_locks[key]

    async def _place(
        self, request: OrderRequest, key: str | None, fingerprint: str
    ) -> SubmittedOrder:
        """Produce the OrderPlaced and record it (under the key's lock when there is a key)."""
        event = build_order_placed(request, key)
        delivery: Delivery | None
        try:
            delivery = await _produce(event, self.producer, self.names, self.ack_timeout)
        except OrderNotAcknowledgedError:
            if await self.store.run(fence_event, self.store, event):
                self.fenced.add(event.eventId, event.orderId)
                raise
            delivery = None  # the order service already took it: the order exists
        response = created_response(request, event)
        ours = response.to_json()
        placed = _Placed(event, delivery, key, fingerprint, ours)
        if key is None and delivery is not None:
            # Kafka holds the order now: the order service records it from there whatever
            # happens to this process (see _PlacedWriter).
            self._writer.write_behind(placed)
            return SubmittedOrder(order_id=event.orderId, response=response, delivery=delivery)
        answer = await self._writer.write(placed)
        if answer != ours:  # another process answered this key first
            return SubmittedOrder(
                order_id=event.orderId,
                response=OrderCreated.model_validate_json(answer),
                delivery=None,
                replayed=True,
            )
        return SubmittedOrder(order_id=event.orderId, response=response, delivery=delivery)

    async def _check_catalog(self, request: OrderRequest) -> None:
        """check_products against the store's catalog, cached; stale, it is re-read behind.

        Product ids hardly ever change, and a query per order is a thread hop per order. A
        cache older than CATALOG_TTL_S still answers while a re-read runs in the background:
        the store's one thread may be busy for seconds (during a failover every 503 fences
        its event there, one transaction each), and every POST waiting for the re-read would
        stall the API as a whole. A miss waits for a fresh read before refusing, so a product
        added a moment ago is found.
        """
        cached = self._catalog
        if cached is not None:
            if time.monotonic() - cached[0] >= CATALOG_TTL_S:
                self._refresh_catalog_behind()
            try:
                check_products(request, cached[1].keys())
                return
            except OrderValidationError:
                pass
        check_products(request, (await self._read_catalog()).keys())

    async def _read_catalog(self) -> dict[str, int]:
        """Read the catalog (price by product id) and cache it."""
        began = time.monotonic()
        products = await self.store.run(self.store.list_products)
        prices = {p.id: p.priceCents for p in products}
        self._catalog = (began, prices)
        return prices

    def _refresh_catalog_behind(self) -> None:
        if self._catalog_refresh is not None and not self._catalog_refresh.done():
            return
        self._catalog_refresh = asyncio.get_running_loop().create_task(
            self._refresh_catalog(), name="orderdeck-catalog-refresh"
        )

    async def _refresh_catalog(self) -> None:
        try:
            await self._read_catalog()
        except Exception as exc:  # the cached catalog keeps answering; the next order retries
            log.debug("catalog re-read failed: %s", exc)


def fresh_id_wait(order_id: str, now: float) -> float:
    """Seconds a GET that missed ``order_id`` should keep re-reading the store; 0: none.

    Only a canonical UUIDv7 (see ``events.time_ordered_uuid``) carries the time it was made;
    it is waited for until its timestamp plus :data:`VISIBLE_WITHIN_S`, at most that long from
    ``now`` (epoch seconds), and not at all when the timestamp is older than the bound or more
    than :data:`CLOCK_SKEW_S` ahead. Every other id (an Idempotency-Key's uuid5, a typo, an
    old order) gets 0: such an order is in the store before its 201, or does not exist.
    """
    if len(order_id) != 36 or order_id[14] != "7" or order_id[19] not in "89ab":
        return 0.0
    try:
        parsed = uuid.UUID(order_id)
    except ValueError:
        return 0.0
    if str(parsed) != order_id:  # not the canonical lower-case form we hand out
        return 0.0
    made = (parsed.int >> 80) / 1000
    if made > now + CLOCK_SKEW_S or made + VISIBLE_WITHIN_S <= now:
        return 0.0
    return min(VISIBLE_WITHIN_S, made + VISIBLE_WITHIN_S - now)


def _replay(key: str, fingerprint: str, store: StoreBackend) -> SubmittedOrder | None:
    record = store.idempotency_get(key)
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyConflictError(key, record.order_id)
    return SubmittedOrder(
        order_id=record.order_id,
        response=OrderCreated.model_validate_json(record.response_json),
        delivery=None,
        replayed=True,
    )


@dataclass(frozen=True)
class _Placed:
    """An acknowledged order waiting to be recorded (and its key's answer remembered)."""

    event: OrderPlaced
    delivery: Delivery | None
    key: str | None
    fingerprint: str
    response_json: str


def _record(tx: WriteTx, placed: _Placed) -> str:
    """Record the acknowledged order (so GET works at once) and remember its key's answer.

    Returns the answer to give: this request's, or — when another process answered the same
    key and body first — the one remembered for the key, so both clients see one order.
    """
    event, delivery, key = placed.event, placed.delivery, placed.key
    if delivery is not None:
        tx.record_placed(
            event, delivery.topic, delivery.partition, delivery.offset, delivery.timestamp_ms
        )
    if key is None:
        return placed.response_json
    record = tx.idempotency_put(key, placed.fingerprint, event.orderId, placed.response_json)
    if record.request_hash != placed.fingerprint:
        raise IdempotencyConflictError(key, record.order_id)
    return record.response_json


def _record_all(store: StoreBackend, batch: list[_Placed]) -> list[Exception | str]:
    """Record a batch of placements in ONE transaction (the commit is most of the cost).

    A conflicting Idempotency-Key is an answer, not a failure, so it keeps the transaction.
    If anything else fails, the transaction is rolled back and every placement is recorded
    in its own transaction, so one bad request cannot fail the others.
    """
    try:
        with store.write() as tx:
            outcomes: list[Exception | str] = []
            for placed in batch:
                try:
                    outcomes.append(_record(tx, placed))
                except IdempotencyConflictError as exc:
                    outcomes.append(exc)
            return outcomes
    except Exception:
        if len(batch) == 1:
            raise
    outcomes = []
    for placed in batch:
        try:
            with store.write() as tx:
                outcomes.append(_record(tx, placed))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


class _PlacedWriter:
    """Records acknowledged orders in the store, in batches, for the API.

    Requests with an Idempotency-Key wait for their row (:meth:`write`): the key's answer
    must be stored before it is given. Concurrent ones share one transaction.

    The others (:meth:`write_behind`) are answered as soon as Kafka acknowledged. The order
    service records each order moments later, from its OrderPlaced, which Kafka already
    holds; writing the same order here too costs database write time under load for nothing
    (BENCHMARKS.md, "write-behind"). So the API only keeps the order in :attr:`unrecorded`
    (``OrderDesk.find_order`` answers a GET from there) and, :data:`RECORD_DELAY_S` later,
    records the orders the store still does not know — none while the order service keeps
    up, all of them while it is stopped or paused.
    A crash loses nothing either way: the order service records the order from Kafka.
    """

    def __init__(self, store: StoreBackend) -> None:
        self._store = store
        self._waiting: list[tuple[_Placed, asyncio.Future[str]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Acknowledged key-less orders not known to be in the store yet, by order id, with
        #: the monotonic time they were accepted (oldest first).
        self.unrecorded: dict[str, tuple[_Placed, float]] = {}
        self._behind_task: asyncio.Task[None] | None = None

    async def write(self, placed: _Placed) -> str:
        """Record ``placed``; returns the answer to give (see _record)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self._waiting.append((placed, done))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = asyncio.create_task(self._drain(), name="orderdeck-placed-writer")
        return await done

    def write_behind(self, placed: _Placed) -> None:
        """Make sure ``placed`` is in the store by RECORD_DELAY_S from now, without waiting."""
        self.unrecorded[placed.event.orderId] = (placed, time.monotonic())
        loop = asyncio.get_running_loop()
        task = self._behind_task
        if task is None or task.done() or task.get_loop() is not loop:
            self._behind_task = asyncio.create_task(
                self._record_behind(), name="orderdeck-placed-write-behind"
            )

    async def flush(self) -> None:
        """Record every order still unrecorded now (before the store closes)."""
        if self.unrecorded:
            await self._record_due(float("inf"))

    async def aclose(self) -> None:
        """Let a batch being written finish and stop the write-behind task (after flush)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        behind, self._behind_task = self._behind_task, None
        if behind is not None and not behind.done():
            behind.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await behind

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._store.run(
                    _record_all, self._store, [placed for placed, _ in batch]
                )
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, Exception):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    async def _record_behind(self) -> None:
        while self.unrecorded:
            oldest = next(iter(self.unrecorded.values()))[1]
            # At least RECORD_EVERY_S apart: one read covers every order that came due.
            await asyncio.sleep(max(RECORD_EVERY_S, oldest + RECORD_DELAY_S - time.monotonic()))
            await self._record_due(time.monotonic() - RECORD_DELAY_S)

    async def _record_due(self, accepted_before: float) -> None:
        due: list[_Placed] = []
        # Entries are in acceptance order: the due ones are at the front.
        for placed, at in self.unrecorded.values():
            if at > accepted_before:
                break
            due.append(placed)
        if not due:
            return
        try:
            recorded = await self._store.run(_record_missing, self._store, due)
            # Zero is the normal case (the order service keeps up): not worth a line at INFO,
            # where it would repeat twice a second under load.
            log.log(
                logging.INFO if recorded else logging.DEBUG,
                "recorded %d accepted orders the order service had not yet",
                recorded,
            )
        except Exception as exc:
            log.warning(
                "could not record %d accepted orders (%s); they are in Kafka", len(due), exc
            )
        for placed in due:
            self.unrecorded.pop(placed.event.orderId, None)


def _record_missing(store: StoreBackend, batch: list[_Placed]) -> int:
    """Record the placements the store does not know yet; returns how many that was.

    The check is a read, so while the order service keeps up this takes no write lock.
    """
    known = store.existing_orders([p.event.orderId for p in batch])
    missing = [p for p in batch if p.event.orderId not in known]
    if missing:
        for outcome in _record_all(store, missing):
            if isinstance(outcome, Exception):
                raise outcome
    return len(missing)


def _unrecorded_view(event: OrderPlaced, delivery: Delivery, prices: dict[str, int]) -> OrderView:
    from orderdeck.store import JourneyHop, OrderItemView, OrderView, StatusChange

    items = [
        OrderItemView(
            productId=i.productId, quantity=i.quantity, unitPriceCents=prices.get(i.productId, 0)
        )
        for i in event.payload.items
    ]
    return OrderView(
        id=event.orderId,
        customerId=event.payload.customerId,
        status=PLACED_STATUS,
        items=items,
        amountCents=sum(i.unitPriceCents * i.quantity for i in items),
        refundedCents=0,
        createdAt=event.occurredAt,
        updatedAt=event.occurredAt,
        history=[StatusChange(status=PLACED_STATUS, at=event.occurredAt)],
        journey=[
            JourneyHop(
                eventId=event.eventId,
                type=event.type,
                topic=delivery.topic,
                partition=delivery.partition,
                offset=delivery.offset,
                timestamp=delivery.timestamp_ms,
                service=None,
                processedAt=None,
            )
        ],
    )


def fence_event(store: StoreBackend, event: OrderPlaced) -> bool:
    """Make sure an unacknowledged OrderPlaced can never become an order.

    Marks the event processed for the order service, exactly as the order service itself does
    when it consumes one, so a late delivery is skipped as a replay. Returns False when the
    order service had already processed it (then the order exists).
    """
    with store.write() as tx:
        return tx.mark_processed(ORDER_SERVICE, event.eventId)


async def _produce(
    event: OrderPlaced, producer: EventProducer, names: TopicNames, ack_timeout: float
) -> Delivery:
    from aiokafka.errors import KafkaError

    topic = names.resolve(event.topic)
    try:
        return await producer.send_event(event, topic, timeout=ack_timeout)
    except TimeoutError:
        # On a replicated cluster the usual cause is brokers down: say which (the 503 names
        # NOT_ENOUGH_REPLICAS) rather than only that the wait ran out.
        shortage = await producer.replica_shortage(topic, event.orderId.encode())
        cause = f"timed out; {shortage}" if shortage else "timed out"
        raise OrderNotAcknowledgedError(ack_timeout, cause) from None
    except KafkaError as exc:
        raise OrderNotAcknowledgedError(ack_timeout, type(exc).__name__) from None
