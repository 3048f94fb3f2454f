"""The store's interface: the write transaction the services use, and the store around it.

Two Protocols every backend (``store/sqlite.py``, ``store/postgres.py``) implements, named
in domain operations so that no caller sees SQL or a driver's types:

* :class:`WriteTx` — what a service (or the API) may do inside one write transaction. The
  services' business rules (``services/payment.py``: the credit limit; ``services/
  inventory.py``: all-or-none reservation) are written once against these primitives; the
  backends only read and write rows.
* :class:`StoreBackend` — opening a transaction, the reads of the API and the screens, the
  outbox's upkeep, and running blocking calls off the event loop.

What each backend must guarantee, whatever its engine:

* One :meth:`StoreBackend.write` block is one transaction: all of it commits or none of it.
* The uniqueness rules are the database's constraints, not checks in Python: one charge or
  decline, one refund, one reservation, one notification of each type per order, one journey
  row per event id. A ``record_*`` primitive that hits one returns False and changes nothing.
* ``*_for_update`` reads hold what they read against other transactions until this one ends
  (SQLite: its single writer lock; PostgreSQL: row or advisory locks), so a rule that reads
  and then writes is not raced by a consumer in another process.
* A failure worth retrying as it was (busy, locked, a serialization failure, a deadlock, a
  dropped connection) is recognised by :meth:`StoreBackend.is_transient`; the services
  then retry the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from orderdeck.events import OrderPlaced, PricedLineItem
from orderdeck.store.views import (
    IdempotencyRecord,
    OrderSummary,
    OrderTiming,
    OrderView,
    OutboxRow,
    Product,
    StuckOrder,
)

if TYPE_CHECKING:
    from orderdeck.store.url import StoreURL

T = TypeVar("T")

ReservationOutcome = Literal["reserved", "out_of_stock"]


@dataclass(frozen=True)
class Hop:
    """One consumed record's journey hop, as :meth:`WriteTx.consume_all` claims it."""

    order_id: str
    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class WriteTx(Protocol):
    """The operations allowed inside one write transaction (see :meth:`StoreBackend.write`).

    Never kept beyond the ``with`` block. Runs on the store's thread, so every method is
    blocking.
    """

    @property
    def now(self) -> str:
        """The transaction's timestamp (ISO 8601 UTC, milliseconds): every row it writes."""
        ...

    @property
    def outbox(self) -> list[OutboxRow]:
        """The outgoing records of this transaction so far, in order."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A block rolled back on its own if it raises (the rest of the transaction goes on).

        Nests; the outbox rows added inside are dropped with it, and the ids they took are
        handed out again, so the rows of one transaction keep consecutive ids.
        """
        ...

    # -- bookkeeping shared by every service

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Mark outbox rows produced (acknowledged by Kafka)."""
        ...

    def mark_processed(self, service: str, event_id: str) -> bool:
        """Claim ``event_id`` for ``service`` without a journey hop; False if already claimed."""
        ...

    def consume(
        self,
        service: str,
        *,
        order_id: str,
        event_id: str,
        event_type: str,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> bool:
        """Record the journey hop of a consumed event and claim it for ``service``.

        The journey row is the event's processed marker: False means it was processed
        before, and the caller must change nothing.
        """
        ...

    def consume_all(self, service: str, hops: Sequence[Hop]) -> set[str]:
        """:meth:`consume` for several events at once; returns the event ids it claimed.

        The event ids must be distinct. A server engine does it in one round trip, which is
        what a batch of records costs most there.
        """
        ...

    def add_outbox(
        self,
        service: str,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> OutboxRow:
        """Append an outgoing record, produced after the transaction commits.

        Ids grow with every row and are never reused; the rows of one transaction have
        consecutive ids.
        """
        ...

    # -- the API

    def record_placed(
        self,
        event: OrderPlaced,
        delivery_topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> None:
        """Record an OrderPlaced that Kafka acknowledged, priced from the catalog; idempotent.

        If the order service got there first this only adds the journey hop.
        """
        ...

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """Remember a response for ``key``; returns the row that holds the key now."""
        ...

    # -- orders (the order service, and the final status of the notification service)

    def product_prices(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Catalog prices of the known products among ``product_ids``."""
        ...

    def accept_order(self, event: OrderPlaced, items: Sequence[PricedLineItem]) -> bool:
        """Store a validated order as ``pending`` with its prices.

        False when the order id belongs to another OrderPlaced, or the order has moved past
        ``placed``: then nothing must be emitted for this event.
        """
        ...

    def register_order(self, event: OrderPlaced) -> bool:
        """Make sure a (to be rejected) order exists; False if the id belongs to another."""
        ...

    def set_status(self, order_id: str, status: str, *, amount_cents: int | None = None) -> bool:
        """Move an order to ``status`` unless it is there or final; appends to its history.

        ``amount_cents`` also sets the order's amount.
        """
        ...

    # -- payments (the rules are in services/payment.py)

    def outstanding_cents_for_update(self, customer_id: str) -> int:
        """The customer's charges minus refunds, held until this transaction ends.

        Another transaction charging the same customer waits, so a credit limit checked
        against this figure cannot be overrun by two concurrent charges.
        """
        ...

    def record_charge(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str
    ) -> bool:
        """Record the order's charge; False (and nothing written) if it was charged or
        declined before."""
        ...

    def record_decline(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str, reason: str
    ) -> bool:
        """Record that the order's payment was declined; False if it was decided before."""
        ...

    def charged_cents(self, order_id: str) -> int | None:
        """What the order was charged; None if it never was."""
        ...

    def record_refund(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str, reason: str
    ) -> bool:
        """Record the order's refund and its refunded amount; False if refunded before."""
        ...

    # -- inventory (the rules are in services/inventory.py)

    def stock_for_update(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Available stock of the known products among ``product_ids``, held until this
        transaction ends (another transaction reserving them waits)."""
        ...

    def record_reservation(
        self,
        order_id: str,
        outcome: ReservationOutcome,
        quantities: Mapping[str, int],
        event_id: str,
    ) -> bool:
        """Record the order's reservation decision; False if it was decided before."""
        ...

    def take_stock(self, quantities: Mapping[str, int]) -> None:
        """Move ``quantities`` from available stock to reserved.

        The database refuses negative stock (a CHECK constraint): taking more than
        :meth:`stock_for_update` said is an error, never an oversell.
        """
        ...

    # -- notifications

    def notify(
        self, order_id: str, event_type: str, customer_id: str, message: str, event_id: str
    ) -> bool:
        """Record the (simulated) message to the customer; False if this order already got
        one of this type."""
        ...


class StoreBackend(Protocol):
    """A connection to the pipeline's state, shared by the threads and tasks of a process."""

    #: Run :meth:`run` calls on the caller's thread instead of the store's own (for a
    #: process with nothing else on its event loop; see the SQLite backend).
    run_inline: bool

    @property
    def url(self) -> StoreURL:
        """Where this store lives (print it freely: the password never shows)."""
        ...

    def write(self) -> AbstractContextManager[WriteTx]:
        """One write transaction, committed when the block ends without error."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this engine saying "try again as it was" (busy, locked, a
        serialization failure or deadlock, a dropped connection)."""
        ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (usually a method of this store) off the event loop."""
        ...

    def close(self) -> None:
        """Release the connections and threads (safe to call twice)."""
        ...

    # -- reads

    def get_order(self, order_id: str) -> OrderView | None:
        """One order with items, status history and journey; None if unknown."""
        ...

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        """Orders newest first and the next page's cursor; ValueError for a foreign cursor."""
        ...

    def existing_orders(self, order_ids: Sequence[str]) -> set[str]:
        """Which of ``order_ids`` the store knows."""
        ...

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]:
        """In-flight orders accepted more than ``older_than_s`` ago, oldest first, each with
        the last event its journey recorded and its age."""
        ...

    def stuck_count(self, older_than_s: float = 30.0) -> int:
        """How many orders ``stuck_orders`` would list without a limit."""
        ...

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of ``order_ids`` the store knows, in one statement."""
        ...

    def order_timings(
        self, after_seq: int, seqs: Sequence[int] = (), limit: int = 10_000
    ) -> list[OrderTiming]:
        """The orders after ``after_seq`` (oldest first) and those numbered ``seqs``."""
        ...

    def list_products(self) -> list[Product]:
        """The catalog with live stock, by id."""
        ...

    def status_counts(self) -> dict[str, int]:
        """How many orders are in each status."""
        ...

    def payment_totals(self) -> dict[str, int]:
        """Sum of cents per payment kind (charge, refund, decline)."""
        ...

    def effect_counts(self) -> dict[str, int]:
        """Row counts of every once-only effect; equal before and after a replay."""
        ...

    def order_payments(self, order_id: str) -> dict[str, int]:
        """The order's payments by kind in cents."""
        ...

    def notifications_for(self, order_id: str) -> list[tuple[str, str]]:
        """(type, message) of every notification sent for an order, oldest first."""
        ...

    # -- single-transaction writes

    def set_stock(self, product_id: str, stock: int) -> None:
        """Set a product's available stock (tests and demos); KeyError if unknown."""
        ...

    def record_placed(
        self,
        event: OrderPlaced,
        delivery_topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> None:
        """:meth:`WriteTx.record_placed` in a transaction of its own."""
        ...

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        """The remembered response for an Idempotency-Key, if any."""
        ...

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """:meth:`WriteTx.idempotency_put` in a transaction of its own."""
        ...

    # -- the outbox's upkeep

    def unsent_outbox(
        self, service: str, older_than_s: float = 0.0, limit: int = 1000, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows of ``service`` not yet produced, oldest first, with ids above ``after_id``,
        written at least ``older_than_s`` ago."""
        ...

    def mark_sent(self, ids: Sequence[int]) -> None:
        """:meth:`WriteTx.mark_sent` in a transaction of its own."""
        ...

    def prune_outbox(self, older_than_s: float = 60.0, chunk: int = 2000) -> int:
        """Delete rows sent more than ``older_than_s`` ago, in short transactions; how many."""
        ...
