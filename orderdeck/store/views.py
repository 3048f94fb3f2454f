"""What the store hands out: read views of orders and products, and the outbox's rows.

Engine-neutral value types shared by every backend and their callers (the API, the screens,
the services); pydantic models where they become JSON, frozen dataclasses where they stay
inside the process. Also the order listing's opaque cursor, which every backend must accept
and hand out the same way, so a cursor from one API process works on another.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from orderdeck.events import iso_utc


def now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z``."""
    return iso_utc(datetime.now(UTC), "milliseconds")


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Product(_View):
    """A catalog entry with its live stock (available now) and what is reserved."""

    id: str
    name: str
    priceCents: int
    stock: int
    reserved: int


class OrderItemView(_View):
    """One line of an order with the price the order service charged for it."""

    productId: str
    quantity: int
    unitPriceCents: int


class StatusChange(_View):
    """One step of an order's status history."""

    status: str
    at: datetime


class JourneyHop(_View):
    """One event of an order's journey and where it sat in Kafka.

    ``timestamp`` is the record's Kafka timestamp (epoch milliseconds); ``service`` and
    ``processedAt`` say who consumed it and when (``None`` while nobody has yet).
    """

    eventId: str
    type: str
    topic: str
    partition: int
    offset: int
    timestamp: int
    service: str | None
    processedAt: datetime | None


class OrderView(_View):
    """Everything known about one order."""

    id: str
    customerId: str
    status: str
    items: list[OrderItemView]
    amountCents: int
    refundedCents: int
    createdAt: datetime
    updatedAt: datetime
    history: list[StatusChange]
    journey: list[JourneyHop]


class OrderSummary(_View):
    """One row of an order listing."""

    id: str
    customerId: str
    status: str
    amountCents: int
    refundedCents: int
    itemCount: int
    createdAt: datetime
    updatedAt: datetime


class StuckOrder(_View):
    """An order not final long after it was accepted, and where it stopped.

    ``lastEvent`` is the type of the last event its journey recorded (the hop it stopped
    after; None when no service recorded one), ``stuckForS`` the seconds since it was accepted,
    at the time of the read.
    """

    id: str
    customerId: str
    status: str
    lastEvent: str | None
    createdAt: datetime
    updatedAt: datetime
    stuckForS: float


class IdempotencyRecord(_View):
    """The response remembered for an ``Idempotency-Key``."""

    key: str
    request_hash: str
    order_id: str
    response_json: str


@dataclass(frozen=True)
class OrderTiming:
    """Where one order stands and when (see ``Store.order_timings``)."""

    seq: int
    status: str
    #: When the order was accepted (its OrderPlaced's occurredAt), ISO 8601 UTC.
    created_at: str
    #: When its status last changed; for a final status, when it became final.
    updated_at: str


@dataclass(frozen=True)
class OutboxRow:
    """An outgoing record waiting to be produced."""

    id: int
    service: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def encode_cursor(seq: int) -> str:
    """The opaque cursor of the page that starts after order ``seq``."""
    return base64.urlsafe_b64encode(f"o:{seq}".encode()).decode().rstrip("=")


_MAX_SEQ = 2**63 - 1
_MAX_SEQ_DIGITS = len(str(_MAX_SEQ))


def decode_cursor(cursor: str) -> int:
    """The order ``seq`` a cursor names; ValueError for one no store handed out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, seq = text.partition(":")
        # ASCII digits within 64-bit integers (SQLite's, PostgreSQL's bigint): int() alone
        # takes "٣" or " 7", and a larger number overflows in the query instead of here.
        if tag != "o" or not (seq.isascii() and seq.isdigit()) or len(seq) > _MAX_SEQ_DIGITS:
            raise ValueError
        value = int(seq)
        if value > _MAX_SEQ:
            raise ValueError
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"invalid cursor: {cursor!r}") from None
