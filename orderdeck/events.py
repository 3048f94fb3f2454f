"""The event contract: topic names and one pydantic model per event type.

Every record on the pipeline's topics is one JSON object with the envelope fields
``eventId``, ``type``, ``orderId``, ``occurredAt`` (UTC ISO-8601), ``schemaVersion`` and
``correlationId``, plus a ``payload`` whose shape depends on ``type``. The record key is the
order id, so all events of one order land on the same partition number of every topic and
are processed in order. Headers repeat the event type and correlation id so tools can
filter without parsing the value.

Money is in integer cents: floats would make refunds drift from charges.

A service answers an event with :func:`reply_to`, whose id is derived from the incoming
event's (:func:`derived_event_id`): a handler that runs again after a crash emits the very same
event, and downstream consumers, idempotent by event id, recognise it. Consumers read records
with :func:`decode_record`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

ORDER_EVENTS = "order-events"
PAYMENT_EVENTS = "payment-events"
INVENTORY_EVENTS = "inventory-events"
NOTIFICATION_EVENTS = "notification-events"

#: The pipeline's topics in the order an order travels through them.
PIPELINE_TOPICS: tuple[str, ...] = (
    ORDER_EVENTS,
    PAYMENT_EVENTS,
    INVENTORY_EVENTS,
    NOTIFICATION_EVENTS,
)
DLQ_SUFFIX = ".dlq"

SCHEMA_VERSION: Final = 1
HEADER_EVENT_TYPE = "event-type"
HEADER_CORRELATION_ID = "correlation-id"
HEADER_SCHEMA_VERSION = "schema-version"

MAX_QUANTITY = 1000
MAX_ITEMS = 50

FINAL_STATUSES = frozenset({"confirmed", "rejected", "payment_declined", "cancelled"})
#: The statuses of an order still on its way (the store's module docstring has their order).
IN_FLIGHT_STATUSES = frozenset(
    {"placed", "pending", "paid", "reserved", "out_of_stock", "refunded"}
)


@dataclass(frozen=True)
class TopicNames:
    """The concrete topic names a deployment uses.

    ``prefix`` namespaces every topic (and so every consumer group, which is named after its
    topic); it is empty in normal use and lets tests share one broker without interfering.
    Events name their *logical* topic (``OrderPlaced.topic == "order-events"``); ``resolve``
    turns it into the concrete name.
    """

    prefix: str = ""

    def resolve(self, logical: str) -> str:
        """The concrete name of a logical topic such as ``order-events``."""
        return self.prefix + logical

    @property
    def orders(self) -> str:
        return self.resolve(ORDER_EVENTS)

    @property
    def payments(self) -> str:
        return self.resolve(PAYMENT_EVENTS)

    @property
    def inventory(self) -> str:
        return self.resolve(INVENTORY_EVENTS)

    @property
    def notifications(self) -> str:
        return self.resolve(NOTIFICATION_EVENTS)

    def pipeline(self) -> tuple[str, ...]:
        """The four pipeline topics, in journey order."""
        return tuple(self.resolve(t) for t in PIPELINE_TOPICS)

    def all(self) -> tuple[str, ...]:
        """The four pipeline topics followed by their dead-letter topics."""
        return self.pipeline() + tuple(dlq_topic(t) for t in self.pipeline())


def dlq_topic(topic: str) -> str:
    """The dead-letter topic that receives ``topic``'s poison records."""
    return topic + DLQ_SUFFIX


def all_topics() -> tuple[str, ...]:
    """The four pipeline topics followed by their dead-letter topics."""
    return PIPELINE_TOPICS + tuple(dlq_topic(t) for t in PIPELINE_TOPICS)


def utc_now() -> datetime:
    """The current time in UTC (events never carry naive datetimes)."""
    return datetime.now(UTC)


def iso_utc(value: datetime, timespec: str = "auto") -> str:
    """An aware datetime as ISO-8601 in UTC with a ``Z`` (``timespec`` as for isoformat)."""
    text = value.isoformat(timespec=timespec)
    if text.endswith("+00:00"):  # the usual case: events carry UTC already (UtcDatetime)
        return text[:-6] + "Z"
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


_RANDOM_IDS_AT_ONCE = 512
_random_pool: list[bytes] = []


def time_ordered_uuid() -> str:
    """A fresh id for an order or an event: a version 7 UUID (RFC 9562).

    The first 48 bits are the Unix time in milliseconds and the other 74 are random, so ids
    made one after the other sort together. That is what the store's indexes want: rows keyed
    by order or event id are appended near each other instead of landing on a random page of
    every index, and a batch's commit writes a handful of pages rather than one per row
    (BENCHMARKS.md, "time-ordered ids").

    The random bits come from a pool: ``os.urandom`` is a system call that releases the GIL,
    and under load the event loop then waits to get it back. One read of 5 KiB serves 512 ids.
    """
    if not _random_pool:
        data = os.urandom(10 * _RANDOM_IDS_AT_ONCE)
        _random_pool.extend(data[i : i + 10] for i in range(0, len(data), 10))
    millis = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    raw = bytearray(millis.to_bytes(6, "big") + _random_pool.pop())
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_ZERO_OFFSET = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    return value if value.utcoffset() == _ZERO_OFFSET else value.astimezone(UTC)


#: An aware datetime kept in UTC, so that pydantic's own serializer writes it as ISO-8601 with
#: a ``Z`` (a Python serializer per event was a measurable share of a service's CPU).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class LineItem(_Model):
    """One product line of an order."""

    productId: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)


class PricedLineItem(LineItem):
    """A line item with the catalog price the order service found for it."""

    unitPriceCents: int = Field(ge=0)


# ----------------------------------------------------------------------------- payloads


class OrderPlacedPayload(_Model):
    """What the customer asked for, as accepted by the API."""

    customerId: str = Field(min_length=1, max_length=128)
    items: list[LineItem] = Field(min_length=1, max_length=MAX_ITEMS)
    source: Literal["api", "legacy"] = "api"


class PaymentRequestedPayload(_Model):
    """Charge the customer for a priced, known-good order."""

    customerId: str
    items: list[PricedLineItem]
    amountCents: int = Field(ge=0)


class RefundRequestedPayload(_Model):
    """Give back a charge because the order could not be fulfilled."""

    customerId: str
    amountCents: int = Field(ge=0)
    reason: str


class StockReservationRequestedPayload(_Model):
    """Reserve every item of a paid order, all or nothing."""

    customerId: str
    items: list[PricedLineItem]
    amountCents: int = Field(ge=0)


class OrderConfirmedPayload(_Model):
    """The order was paid and every item reserved."""

    customerId: str
    items: list[PricedLineItem]
    amountCents: int = Field(ge=0)


class OrderRejectedPayload(_Model):
    """The order could not be accepted (unknown product, bad quantity, ...)."""

    customerId: str
    reason: str


class PaymentDeclinedPayload(_Model):
    """The payment rules refused the charge."""

    customerId: str
    amountCents: int = Field(ge=0)
    reason: str


class OrderCancelledPayload(_Model):
    """Paid but not fulfilled: the charge was refunded."""

    customerId: str
    refundedCents: int = Field(ge=0)
    reason: str


# ----------------------------------------------------------------------------- envelopes


class _Envelope(_Model):
    eventId: str = Field(default_factory=time_ordered_uuid, min_length=1)
    orderId: str = Field(min_length=1, max_length=128)
    occurredAt: UtcDatetime = Field(default_factory=utc_now)
    schemaVersion: Literal[1] = SCHEMA_VERSION
    correlationId: str = Field(default="", description="Ties every event of one order together.")

    #: The topic a new event of this type is produced to.
    topic: ClassVar[str]


class OrderPlaced(_Envelope):
    """An order accepted by the API (or by another producer); the order service's inbox."""

    type: Literal["OrderPlaced"] = "OrderPlaced"
    payload: OrderPlacedPayload
    topic: ClassVar[str] = ORDER_EVENTS


class PaymentRequested(_Envelope):
    """Ask the payment service to charge an order."""

    type: Literal["PaymentRequested"] = "PaymentRequested"
    payload: PaymentRequestedPayload
    topic: ClassVar[str] = PAYMENT_EVENTS


class RefundRequested(_Envelope):
    """Ask the payment service to refund an order's charge (saga compensation)."""

    type: Literal["RefundRequested"] = "RefundRequested"
    payload: RefundRequestedPayload
    topic: ClassVar[str] = PAYMENT_EVENTS


class StockReservationRequested(_Envelope):
    """Ask the inventory service to reserve a paid order's items."""

    type: Literal["StockReservationRequested"] = "StockReservationRequested"
    payload: StockReservationRequestedPayload
    topic: ClassVar[str] = INVENTORY_EVENTS


class OrderConfirmed(_Envelope):
    """Final: paid and reserved."""

    type: Literal["OrderConfirmed"] = "OrderConfirmed"
    payload: OrderConfirmedPayload
    topic: ClassVar[str] = NOTIFICATION_EVENTS


class OrderRejected(_Envelope):
    """Final: the order service refused the order."""

    type: Literal["OrderRejected"] = "OrderRejected"
    payload: OrderRejectedPayload
    topic: ClassVar[str] = NOTIFICATION_EVENTS


class PaymentDeclined(_Envelope):
    """Final: the charge was declined."""

    type: Literal["PaymentDeclined"] = "PaymentDeclined"
    payload: PaymentDeclinedPayload
    topic: ClassVar[str] = NOTIFICATION_EVENTS


class OrderCancelled(_Envelope):
    """Final: out of stock after payment; the charge was refunded."""

    type: Literal["OrderCancelled"] = "OrderCancelled"
    payload: OrderCancelledPayload
    topic: ClassVar[str] = NOTIFICATION_EVENTS


Event = Annotated[
    OrderPlaced
    | PaymentRequested
    | RefundRequested
    | StockReservationRequested
    | OrderConfirmed
    | OrderRejected
    | PaymentDeclined
    | OrderCancelled,
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[_Envelope]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        OrderPlaced,
        PaymentRequested,
        RefundRequested,
        StockReservationRequested,
        OrderConfirmed,
        OrderRejected,
        PaymentDeclined,
        OrderCancelled,
    )
}

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class LegacyOrder(BaseModel):
    """An order record in the original TypeScript project's shape.

    Any producer may still write these onto ``order-events``; the order service treats one
    as an OrderPlaced for a single line item. Unknown extra fields are ignored, as the
    original consumers did.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    customerId: str = Field(min_length=1, max_length=128)
    productId: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    status: str = "pending"
    createdAt: AwareDatetime | None = None

    def to_order_placed(self) -> OrderPlaced:
        """The OrderPlaced this legacy record stands for.

        The event id is derived from the order id so a replayed legacy record is recognised
        as the same event and changes nothing.
        """
        return OrderPlaced(
            eventId=str(uuid.uuid5(uuid.NAMESPACE_URL, f"orderdeck:legacy:{self.id}")),
            orderId=self.id,
            occurredAt=self.createdAt or utc_now(),
            correlationId=self.id,
            payload=OrderPlacedPayload(
                customerId=self.customerId,
                items=[LineItem(productId=self.productId, quantity=self.quantity)],
                source="legacy",
            ),
        )


class PoisonRecordError(ValueError):
    """A record that can never be processed; it belongs in the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(event: _Envelope) -> bytes:
    """The event's JSON bytes for a record value."""
    return event.model_dump_json(exclude_none=False).encode()


def headers_for(event: _Envelope) -> list[tuple[str, bytes]]:
    """Record headers carrying the event type, correlation id and schema version."""
    return [
        (HEADER_EVENT_TYPE, event.type.encode()),  # type: ignore[attr-defined]
        (HEADER_CORRELATION_ID, (event.correlationId or event.orderId).encode()),
        (HEADER_SCHEMA_VERSION, str(event.schemaVersion).encode()),
    ]


def decode(value: bytes | None) -> Event:
    """Parse a record value into its event model.

    Raises PoisonRecordError with a human-readable reason when the bytes are not JSON,
    not an object, of an unknown type, or do not match the type's schema. A legacy order
    record (no ``type``, has ``id``/``productId``) is converted to an OrderPlaced.
    """
    if value is None:
        raise PoisonRecordError("record has no value")
    try:
        data: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonRecordError(f"value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonRecordError("value is not a JSON object")
    if "type" not in data and "id" in data and "productId" in data:
        try:
            return LegacyOrder.model_validate(data).to_order_placed()
        except ValidationError as exc:
            raise PoisonRecordError(f"invalid legacy order: {_first_error(exc)}") from None
    event_type = data.get("type")
    if event_type not in EVENT_TYPES:
        raise PoisonRecordError(f"unknown event type: {event_type!r}")
    try:
        return _EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise PoisonRecordError(f"invalid {event_type}: {_first_error(exc)}") from None


def decode_record(value: bytes | None) -> Event:
    """:func:`decode` with a fast path: pydantic parses the JSON bytes itself.

    Anything the fast path refuses (a legacy-shape order, a poison record) goes through
    :func:`decode`, which converts it or raises PoisonRecordError with the reason.
    """
    if value is not None:
        try:
            return _EVENT_ADAPTER.validate_json(value)
        except ValidationError:
            pass
    return decode(value)


_OUT_KEY = b"orderdeck-derived-event-id"

EventT = TypeVar("EventT", bound=BaseModel)


def derived_event_id(incoming_event_id: str, out_type: str) -> str:
    """The id of the event a handler emits for an incoming event: stable across retries.

    A name-based id: BLAKE2b of the incoming id and the outgoing type, in the usual
    8-4-4-4-12 form (cheaper than ``uuid.uuid5`` on the hot path). When the incoming id is
    time-ordered (a version 7 UUID, as the API makes them) the derived one keeps its
    48-bit timestamp, so every event of an order sorts next to the order in the store's
    indexes (see :func:`time_ordered_uuid`).
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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """The first header called ``name`` decoded as UTF-8, or None."""
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return None
