"""Placing an order: the request models, their validation and the one path to Kafka.

Both doors into the pipeline — ``POST /api/v1/orders`` and the TUI's submit form (through
``Runtime.submit_order``) — go through :func:`place_order`, so an order is validated,
produced and recorded the same way whoever sends it. This module imports no web framework:
the TUI validates its form with these same pydantic models.

Order of events for one order: validate the body, check every product against the catalog,
produce ``OrderPlaced`` and wait (bounded) for the broker's ``acks=all`` acknowledgement, then
record the order as ``placed`` in the store so a GET works at once.

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
import hashlib
import json
import logging
import time
import uuid
import weakref
from collections.abc import Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from orderdeck.errors import OrderdeckError
from orderdeck.events import (
    MAX_ITEMS,
    MAX_QUANTITY,
    LineItem,
    OrderPlaced,
    OrderPlacedPayload,
    TopicNames,
    iso_utc,
    time_ordered_uuid,
)

if TYPE_CHECKING:
    from orderdeck.kafka.producer import Delivery, EventProducer
    from orderdeck.store import OrderView, Store, WriteTx

log = logging.getLogger(__name__)

#: The status an order has from the moment Kafka acknowledged its OrderPlaced.
PLACED_STATUS = "placed"
#: The order service's name in the store's processed-events table (see fence_event).
ORDER_SERVICE = "order"
CREATED_MESSAGE = "Order event sent"
DEFAULT_ACK_TIMEOUT_S = 5.0
#: How long after a key-less order's 201 the API records it if the order service has not.
RECORD_DELAY_S = 2.0
RECORD_EVERY_S = 0.5
#: How long the catalog's product ids are trusted before they are read again.
CATALOG_TTL_S = 2.0
MAX_IDEMPOTENCY_KEY_LENGTH = 255
#: Namespace of the ids derived from an Idempotency-Key (uuid5): stable across processes.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d3c52-3b8e-5f0a-9c47-0d5e2a7b9e11")

CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
ProductId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SingleItemOrder(_Body):
    """The original project's body: one product line."""

    customerId: CustomerId
    productId: ProductId
    quantity: Quantity


class OrderItem(_Body):
    """One line of a multi-item order."""

    productId: ProductId
    quantity: Quantity


class MultiItemOrder(_Body):
    """Several product lines in one order (each product at most once)."""

    customerId: CustomerId
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ITEMS)


class OrderRequest(BaseModel):
    """An order as the pipeline sees it, whichever body shape it arrived in.

    ``multiItem`` remembers the shape so errors and the 201 answer speak the client's language
    (``productId`` vs ``items.0.productId``, ``items`` in the answer or not).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    customerId: CustomerId
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=MAX_ITEMS)
    multiItem: bool = False

    @classmethod
    def single(cls, customer_id: str, product_id: str, quantity: int) -> OrderRequest:
        """A one-line order, validated like the original body (raises OrderValidationError)."""
        return parse_order_body(
            {"customerId": customer_id, "productId": product_id, "quantity": quantity}
        )

    def field_of(self, index: int, name: str) -> str:
        """The body field a client used for line ``index``'s ``name``."""
        return f"items.{index}.{name}" if self.multiItem else name

    def fingerprint(self) -> str:
        """A hash of what was asked for, to tell a retried request from a different one."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class PlacedOrderEvent(BaseModel):
    """The ``event`` of the 201 answer: the original project's order record.

    For a multi-item order ``productId``/``quantity`` repeat the first line so clients of the
    original shape keep working, and ``items`` lists every line.
    """

    id: str
    customerId: str
    productId: str
    quantity: int
    status: str
    createdAt: str
    items: list[LineItem] | None = None


class OrderCreated(BaseModel):
    """The 201 answer: the original shape plus the order's status."""

    message: str = CREATED_MESSAGE
    event: PlacedOrderEvent
    status: str

    def to_json(self) -> str:
        """Compact JSON without the multi-item ``items`` key when it is absent."""
        return self.model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a request."""

    field: str
    reason: str


class OrderValidationError(OrderdeckError):
    """The request is well-formed JSON but not an acceptable order (HTTP 422)."""

    def __init__(self, fields: list[FieldError]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f.field}: {f.reason}" for f in fields))


class IdempotencyConflictError(OrderdeckError):
    """The Idempotency-Key was already used for a different request (HTTP 409)."""

    def __init__(self, key: str, order_id: str) -> None:
        self.key = key
        self.order_id = order_id
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different order ({order_id})"
        )


class OrderNotAcknowledgedError(OrderdeckError):
    """Kafka did not acknowledge the OrderPlaced in time; no order was created (HTTP 503)."""

    def __init__(self, timeout: float, cause: str) -> None:
        self.timeout = timeout
        super().__init__(
            f"Kafka did not acknowledge the order within {timeout:g} s ({cause}); "
            "no order was created, retry later"
        )


@dataclass(frozen=True)
class SubmittedOrder:
    """The outcome of a successful :func:`place_order`."""

    order_id: str
    response: OrderCreated
    #: Where the OrderPlaced landed; None when an idempotent retry was answered from the store.
    delivery: Delivery | None
    #: True when an Idempotency-Key matched an earlier identical request.
    replayed: bool = False

    @property
    def location(self) -> str:
        """The order's URL path (the 201's Location header)."""
        return f"/api/v1/orders/{self.order_id}"


# ----------------------------------------------------------------------------- validation

_REASONS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
}


def _reason(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries"
    return str(err["msg"])


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(p) for p in err["loc"]) or "body", _reason(err))
        for err in exc.errors(include_url=False)
    ]


def parse_order_body(data: Any) -> OrderRequest:
    """Validate a decoded JSON body (either shape) into an OrderRequest.

    The shape is chosen by the presence of ``items`` so the errors describe the shape the
    client meant, rather than a confusing union of both. Raises OrderValidationError.
    """
    if not isinstance(data, dict):
        raise OrderValidationError([FieldError("body", "must be a JSON object")])
    try:
        if "items" in data:
            multi = MultiItemOrder.model_validate(data)
            request = OrderRequest(
                customerId=multi.customerId,
                items=tuple(
                    LineItem(productId=i.productId, quantity=i.quantity) for i in multi.items
                ),
                multiItem=True,
            )
        else:
            single = SingleItemOrder.model_validate(data)
            request = OrderRequest(
                customerId=single.customerId,
                items=(LineItem(productId=single.productId, quantity=single.quantity),),
            )
    except ValidationError as exc:
        raise OrderValidationError(_field_errors(exc)) from None
    seen: dict[str, int] = {}
    duplicates = []
    for index, item in enumerate(request.items):
        if item.productId in seen:
            duplicates.append(
                FieldError(
                    request.field_of(index, "productId"),
                    f"duplicate of items.{seen[item.productId]}; combine the quantities",
                )
            )
        seen.setdefault(item.productId, index)
    if duplicates:
        raise OrderValidationError(duplicates)
    return request


def check_products(request: OrderRequest, known: Collection[str]) -> None:
    """Raise OrderValidationError naming every line whose product is not in the catalog."""
    unknown = [
        FieldError(request.field_of(i, "productId"), f"unknown product {item.productId!r}")
        for i, item in enumerate(request.items)
        if item.productId not in known
    ]
    if unknown:
        raise OrderValidationError(unknown)


def check_idempotency_key(key: str | None) -> str | None:
    """Validate an Idempotency-Key header value (printable ASCII, 1..255 characters)."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise OrderValidationError(
            [
                FieldError(
                    "Idempotency-Key",
                    f"must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
                )
            ]
        )
    return key


# ----------------------------------------------------------------------------- events


def idempotent_order_id(key: str) -> str:
    """The order id an Idempotency-Key stands for, the same in every process."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"order:{key}"))


def build_order_placed(request: OrderRequest, idempotency_key: str | None = None) -> OrderPlaced:
    """The OrderPlaced for a request: a fresh order id, or the one derived from the key."""
    key = idempotency_key
    order_id = time_ordered_uuid() if key is None else idempotent_order_id(key)
    return OrderPlaced(
        eventId=time_ordered_uuid(),
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(customerId=request.customerId, items=list(request.items)),
    )


def created_response(request: OrderRequest, event: OrderPlaced) -> OrderCreated:
    """The 201 body for an accepted order."""
    first = request.items[0]
    return OrderCreated(
        event=PlacedOrderEvent(
            id=event.orderId,
            customerId=request.customerId,
            productId=first.productId,
            quantity=first.quantity,
            status=PLACED_STATUS,
            createdAt=iso_utc(event.occurredAt),
            items=list(request.items) if request.multiItem else None,
        ),
        status=PLACED_STATUS,
    )


# ----------------------------------------------------------------------------- placing

_key_locks: dict[str, asyncio.Lock] = {}


@asynccontextmanager
async def _key_lock(key: str | None) -> Any:
    """Serialise requests that share an Idempotency-Key inside this process.

    Two concurrent requests with one key would otherwise both produce; the lock makes the
    second see the first one's stored answer. Locks are dropped once nobody holds them.
    """
    if key is None:
        yield
        return
    lock = _key_locks.setdefault(key, asyncio.Lock())
    try:
        async with lock:
            yield
    finally:
        if not lock.locked() and _key_locks.get(key) is lock:
            del _key_locks[key]


def _replay(key: str, fingerprint: str, store: Store) -> SubmittedOrder | None:
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


async def place_order(
    request: OrderRequest,
    *,
    store: Store,
    producer: EventProducer,
    names: TopicNames,
    idempotency_key: str | None = None,
    ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
) -> SubmittedOrder:
    """Validate, produce and record one order; the API and the TUI both come through here.

    Raises OrderValidationError (unknown product), IdempotencyConflictError (key reused with a
    different request) or OrderNotAcknowledgedError (Kafka did not ack within ``ack_timeout``).
    """
    # Every store call runs on the store's database thread (Store.run): a write may wait for
    # SQLite's lock while a service (in this process or another) commits a batch, and the
    # event loop that serves the API and runs the services must never wait with it.
    await _check_catalog(request, store)
    key = check_idempotency_key(idempotency_key)
    if key is None:
        return await _place(request, store, producer, names, None, "", ack_timeout)
    fingerprint = request.fingerprint()
    async with _key_lock(key):
        earlier = await store.run(_replay, key, fingerprint, store)
        if earlier is not None:
            return earlier
        return await _place(request, store, producer, names, key, fingerprint, ack_timeout)


async def _place(
    request: OrderRequest,
    store: Store,
    producer: EventProducer,
    names: TopicNames,
    key: str | None,
    fingerprint: str,
    ack_timeout: float,
) -> SubmittedOrder:
    """Produce the OrderPlaced and record it (under the key's lock when there is a key)."""
    event = build_order_placed(request, key)
    delivery: Delivery | None
    try:
        delivery = await _produce(event, producer, names, ack_timeout)
    except OrderNotAcknowledgedError:
        if await store.run(fence_event, store, event):
            raise
        delivery = None  # the order service already took it: the order exists
    response = created_response(request, event)
    ours = response.to_json()
    placed = _Placed(event, delivery, key, fingerprint, ours)
    if key is None and delivery is not None:
        # Kafka holds the order now: the order service records it from there whatever
        # happens to this process (see _PlacedWriter).
        _writer_for(store).write_behind(placed)
        return SubmittedOrder(order_id=event.orderId, response=response, delivery=delivery)
    answer = await _writer_for(store).write(placed)
    if answer != ours:  # another process answered this key first
        return SubmittedOrder(
            order_id=event.orderId,
            response=OrderCreated.model_validate_json(answer),
            delivery=None,
            replayed=True,
        )
    return SubmittedOrder(order_id=event.orderId, response=response, delivery=delivery)


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


def _record_all(store: Store, batch: list[_Placed]) -> list[Exception | str]:
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
    holds; writing the same order here too was a third of the database's write time under
    load. So the API only keeps the order in :attr:`unrecorded` (``find_order`` answers a GET
    from there) and, :data:`RECORD_DELAY_S` later, records the orders the store still does not
    know — none while the order service keeps up, all of them while it is stopped or paused.
    A crash loses nothing either way: the order service records the order from Kafka.
    """

    def __init__(self, store: Store) -> None:
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
            log.info("recorded %d accepted orders the order service had not yet", recorded)
        except Exception as exc:
            log.warning(
                "could not record %d accepted orders (%s); they are in Kafka", len(due), exc
            )
        for placed in due:
            self.unrecorded.pop(placed.event.orderId, None)


def _record_missing(store: Store, batch: list[_Placed]) -> int:
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


_writers: weakref.WeakKeyDictionary[Store, _PlacedWriter] = weakref.WeakKeyDictionary()
_catalogs: weakref.WeakKeyDictionary[Store, tuple[float, dict[str, int]]] = (
    weakref.WeakKeyDictionary()
)


async def flush_placements(store: Store) -> None:
    """Record the orders this process accepted that the store does not know yet.

    For a clean stop: they would be recorded by the order service anyway, but a GET after
    the restart should not have to wait for it.
    """
    writer = _writers.get(store)
    if writer is not None:
        await writer.flush()


def _writer_for(store: Store) -> _PlacedWriter:
    writer = _writers.get(store)
    if writer is None:
        writer = _writers[store] = _PlacedWriter(store)
    return writer


async def _check_catalog(request: OrderRequest, store: Store) -> None:
    """check_products against the store's catalog, cached for CATALOG_TTL_S.

    Product ids hardly ever change, and a query per order is a thread hop per order. A
    miss re-reads the catalog before refusing, so a product added a moment ago is found.
    """
    now = time.monotonic()
    cached = _catalogs.get(store)
    if cached is not None and now - cached[0] < CATALOG_TTL_S:
        try:
            check_products(request, cached[1].keys())
            return
        except OrderValidationError:
            pass
    products = await store.run(store.list_products)
    prices = {p.id: p.priceCents for p in products}
    _catalogs[store] = (now, prices)
    check_products(request, prices.keys())


async def find_order(store: Store, order_id: str) -> OrderView | None:
    """One order as ``Store.get_order`` has it, or as just accepted by this process.

    An order answered with 201 but not yet committed by the write-behind (see _PlacedWriter)
    is shown as ``placed``, priced from the catalog, with its OrderPlaced hop.
    """
    view = await store.run(store.get_order, order_id)
    if view is not None:
        return view
    writer = _writers.get(store)
    entry = writer.unrecorded.get(order_id) if writer is not None else None
    if entry is None or entry[0].delivery is None:
        return None
    placed = entry[0]
    assert placed.delivery is not None
    cached = _catalogs.get(store)
    return _unrecorded_view(placed.event, placed.delivery, cached[1] if cached else {})


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


def fence_event(store: Store, event: OrderPlaced) -> bool:
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

    try:
        return await producer.send_event(event, names.resolve(event.topic), timeout=ack_timeout)
    except TimeoutError:
        raise OrderNotAcknowledgedError(ack_timeout, "timed out") from None
    except KafkaError as exc:
        raise OrderNotAcknowledgedError(ack_timeout, type(exc).__name__) from None
