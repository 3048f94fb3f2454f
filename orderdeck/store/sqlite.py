"""The embedded SQLite backend: the default store, one file shared by every local process.

The only module of orderdeck that imports ``sqlite3``; it implements the Protocols of
``store/tx.py``. One database file is shared by every process of a deployment on one host
(the API and any number of ``orderdeck serve`` processes). That is safe because:

* the database runs in WAL mode, so readers never block the single writer and vice versa;
* every write is a ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front (a
  deferred transaction that upgrades to a writer can fail with "database is locked" at once,
  without waiting), and ``busy_timeout`` makes a second writer wait instead of failing;
* writers queue on a file lock beside the database before they begin (:class:`_WriterLock`),
  so the lock passes to the next writer at once instead of after SQLite's busy polling;
* ``synchronous=NORMAL``: in WAL mode a commit is atomic and survives a process crash; only a
  power loss can drop the last commits, which Kafka redelivery then repairs;
* a background thread checkpoints the log (:class:`_Checkpointer`), off the writers' path.

Because a write transaction holds the one writer lock from its first statement, every read
inside it is already "for update": the ``*_for_update`` primitives need no extra locking.

Order statuses move forward only: ``placed`` (accepted by the API) -> ``pending`` (priced by the
order service) -> ``paid`` -> ``reserved`` -> ``confirmed``; or ``paid`` -> ``out_of_stock`` ->
``refunded`` -> ``cancelled``; or ``payment_declined`` / ``rejected``. A final status is never
overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic_core import from_json, to_json

from orderdeck.events import (
    FINAL_STATUSES,
    IN_FLIGHT_STATUSES,
    LineItem,
    OrderPlaced,
    PricedLineItem,
    iso_utc,
)
from orderdeck.store.catalog import catalog_for, load_catalog
from orderdeck.store.rows import (
    HOP_COLUMNS,
    IDEMPOTENCY_COLUMNS,
    ITEM_COLUMNS,
    ORDER_COLUMNS,
    STUCK_COLUMNS,
    SUMMARY_COLUMNS,
    idempotency_record,
    order_view,
    stuck_cutoff,
    stuck_orders,
    summary_page,
)
from orderdeck.store.schema import migration_steps
from orderdeck.store.tx import Hop, ReservationOutcome
from orderdeck.store.url import StoreURL
from orderdeck.store.views import (
    IdempotencyRecord,
    OrderSummary,
    OrderTiming,
    OrderView,
    OutboxRow,
    Product,
    StuckOrder,
    decode_cursor,
    now_iso,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]

BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 32 * 1024
#: Reads straight from the OS page cache instead of copying pages through read().
MMAP_BYTES = 256 * 1024 * 1024
#: Checkpoints run in the background (see _Checkpointer); this only bounds the log if not.
WAL_AUTOCHECKPOINT_PAGES = 50_000
CHECKPOINT_INTERVAL_S = 0.5

T = TypeVar("T")

#: Version 1: the schema as it was before versioning (so a version-0 store gains nothing
#: it lacks and loses nothing it has).
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS products (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE IF NOT EXISTS orders (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    customer_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    amount_cents    INTEGER NOT NULL DEFAULT 0,
    refunded_cents  INTEGER NOT NULL DEFAULT 0,
    source          TEXT NOT NULL DEFAULT 'api',
    placed_event_id TEXT NOT NULL,
    history         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, seq);
CREATE TABLE IF NOT EXISTS order_items (
    order_id         TEXT NOT NULL,
    line             INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE IF NOT EXISTS payments (
    order_id     TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('charge', 'refund', 'decline')),
    customer_id  TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    event_id     TEXT NOT NULL,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (order_id, kind)
);
CREATE INDEX IF NOT EXISTS payments_customer ON payments (customer_id, kind);
CREATE UNIQUE INDEX IF NOT EXISTS payments_decision ON payments (order_id)
    WHERE kind IN ('charge', 'decline');
CREATE TABLE IF NOT EXISTS reservations (
    order_id   TEXT PRIMARY KEY,
    outcome    TEXT NOT NULL CHECK (outcome IN ('reserved', 'out_of_stock')),
    items_json TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    order_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    message     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (order_id, type)
);
CREATE TABLE IF NOT EXISTS journey (
    event_id     TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL,
    type         TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    service      TEXT,
    processed_at TEXT
);
CREATE INDEX IF NOT EXISTS journey_order ON journey (order_id);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service      TEXT NOT NULL,
    topic        TEXT NOT NULL,
    key          BLOB,
    value        BLOB,
    headers_json TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    sent_at      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (service, id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    response_json TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
"""


#: One step per schema version, applied in order in the transaction that checks the version.
#: Step 2 is PostgreSQL's status-count table; SQLite counts with its cache of settled orders.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: ""}

_FINAL_LIST = sorted(FINAL_STATUSES)
_FINAL_MARKS = ",".join("?" * len(_FINAL_LIST))
_IN_FLIGHT_LIST = sorted(IN_FLIGHT_STATUSES)
_IN_FLIGHT_MARKS = ",".join("?" * len(_IN_FLIGHT_LIST))


def _iso(value: datetime) -> str:
    return iso_utc(value, "milliseconds")


@dataclass(frozen=True)
class ConnectionSettings:
    """How a Store's SQLite connection is set up (see :meth:`Store.connection_settings`)."""

    journal_mode: str
    busy_timeout_ms: int
    #: SQLite's own checkpoint threshold, the fallback behind the checkpointer thread.
    wal_autocheckpoint_pages: int
    page_size: int


def _headers_to_json(headers: Sequence[tuple[str, bytes]]) -> str:
    # Latin-1 maps every byte to one code point, so any header value survives the round trip;
    # pydantic_core's encoder is several times faster than json.dumps on this hot path.
    return to_json([[k, v.decode("latin-1")] for k, v in headers]).decode()


def _headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode("latin-1")) for k, v in from_json(text))


class SQLiteWriteTx:
    """:class:`orderdeck.store.tx.WriteTx` on one SQLite connection inside ``BEGIN IMMEDIATE``.

    Obtained from :meth:`SQLiteStore.write`; never kept beyond the ``with`` block.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.now = now_iso()
        #: Outgoing records of this transaction, in order; inserted together before COMMIT.
        self.outbox: list[OutboxRow] = []
        self._next_outbox_id: int | None = None
        self._prices: dict[str, int | None] = {}

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block that is rolled back on its own if it raises (the batch goes on)."""
        # Savepoints nest by name: ROLLBACK TO / RELEASE act on the innermost "record".
        mark = len(self.outbox)
        self._conn.execute("SAVEPOINT record")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO record")
            self._conn.execute("RELEASE record")
            if mark < len(self.outbox):
                self._next_outbox_id = self.outbox[mark].id  # ids stay consecutive
                del self.outbox[mark:]
            raise
        self._conn.execute("RELEASE record")

    # -- bookkeeping shared by every service

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Mark outbox rows produced (acknowledged by Kafka).

        The rows of one batch have consecutive ids (one transaction wrote them), so this is
        usually a single range update.
        """
        self._conn.executemany(
            "UPDATE outbox SET sent_at = ? WHERE id BETWEEN ? AND ? AND sent_at IS NULL",
            [(self.now, lo, hi) for lo, hi in _ranges(ids)],
        )

    def mark_processed(self, service: str, event_id: str) -> bool:
        """Claim ``event_id`` for ``service`` without a journey hop; False if already claimed.

        For what is settled without being handled: a dead-lettered record's position, or an
        OrderPlaced the API fences off because Kafka never acknowledged it (a late delivery
        is then skipped by the order service as a replay). The claim lives in the journey
        table, which is the processed-event record (see :meth:`consume`), with no order id,
        so it never shows in an order's journey.
        """
        cur = self._conn.execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at) VALUES (?, '', '', '', -1, -1, 0, ?, ?)"
            " ON CONFLICT (event_id) DO UPDATE SET"
            " service = excluded.service, processed_at = excluded.processed_at"
            " WHERE journey.service IS NULL",
            (event_id, service, self.now),
        )
        return cur.rowcount == 1

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

        The journey row doubles as the event's processed marker (an event belongs to exactly
        one inbox, so to one service): False means the event was processed before and the
        caller must change nothing. One statement instead of two on the hottest path.
        """
        cur = self._conn.execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO UPDATE SET"
            " service = excluded.service, processed_at = excluded.processed_at"
            " WHERE journey.service IS NULL",
            (
                event_id,
                order_id,
                event_type,
                topic,
                partition,
                offset,
                timestamp_ms,
                service,
                self.now,
            ),
        )
        return cur.rowcount == 1

    def consume_all(self, service: str, hops: Sequence[Hop]) -> set[str]:
        """:meth:`consume` for each hop (in-process statements cost no round trip)."""
        return {
            h.event_id
            for h in hops
            if self.consume(
                service,
                order_id=h.order_id,
                event_id=h.event_id,
                event_type=h.event_type,
                topic=h.topic,
                partition=h.partition,
                offset=h.offset,
                timestamp_ms=h.timestamp_ms,
            )
        }

    def add_outbox(
        self,
        service: str,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> OutboxRow:
        """Append an outgoing record; it is produced after this transaction commits.

        The rows of a transaction are written by one statement just before it commits
        (:meth:`flush_outbox`): one insert per row was a fifth of a service's database time.
        Their ids are handed out here, in order, after the highest id ever used; the
        transaction holds the write lock, so nobody else can take them meanwhile.
        """
        if self._next_outbox_id is None:
            row = self._conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            ).fetchone()
            self._next_outbox_id = (row[0] if row else 0) + 1
        out = OutboxRow(self._next_outbox_id, service, topic, key, value, tuple(headers))
        self._next_outbox_id += 1
        self.outbox.append(out)
        return out

    def flush_outbox(self) -> None:
        """Insert the transaction's outgoing records (``Store.write`` calls it before COMMIT)."""
        if not self.outbox:
            return
        self._conn.executemany(
            "INSERT INTO outbox (id, service, topic, key, value, headers_json, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (r.id, r.service, r.topic, r.key, r.value, _headers_to_json(r.headers), self.now)
                for r in self.outbox
            ],
        )

    # -- the API

    def record_placed(
        self,
        event: OrderPlaced,
        delivery_topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> None:
        """Record an acknowledged OrderPlaced (see :meth:`Store.record_placed`); idempotent.

        Prices come from the catalog now; the order service re-prices when it accepts the
        order. If the order service got there first this only adds the journey hop.
        """
        conn = self._conn
        if _insert_placed(conn, event, self.now, None) == "inserted":
            items = event.payload.items
            prices = self.product_prices([i.productId for i in items])
            conn.executemany(
                "UPDATE order_items SET unit_price_cents = ? WHERE order_id = ? AND line = ?",
                [(prices.get(i.productId, 0), event.orderId, n) for n, i in enumerate(items)],
            )
            amount = sum(prices.get(i.productId, 0) * i.quantity for i in items)
            conn.execute("UPDATE orders SET amount_cents = ? WHERE id = ?", (amount, event.orderId))
        _upsert_hop(
            conn,
            event.orderId,
            event.eventId,
            event.type,
            delivery_topic,
            partition,
            offset,
            timestamp_ms,
            None,
            None,
        )

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """Remember a response for ``key``; returns the row that holds the key now."""
        self._conn.execute(
            "INSERT INTO idempotency_keys (key, request_hash, order_id,"
            " response_json, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key, request_hash, order_id, response_json, self.now),
        )
        record = _idempotency_row(self._conn, key)
        assert record is not None
        return record

    # -- order service

    def product_prices(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Catalog prices of the known products among ``product_ids``.

        Looked up once per product per transaction: nothing else can write meanwhile.
        """
        prices = self._prices
        missing = sorted({p for p in product_ids if p not in prices})
        if missing:
            marks = ",".join("?" * len(missing))
            rows = self._conn.execute(
                f"SELECT id, price_cents FROM products WHERE id IN ({marks})", missing
            ).fetchall()
            prices.update({p: None for p in missing})
            prices.update({r[0]: r[1] for r in rows})
        return {p: price for p in product_ids if (price := prices[p]) is not None}

    def accept_order(self, event: OrderPlaced, items: Sequence[PricedLineItem]) -> bool:
        """Store a validated order as ``pending`` with its prices.

        False when the order id already belongs to another OrderPlaced, or the order has
        moved past ``placed``: then nothing must be emitted for this event.
        """
        amount = sum(i.unitPriceCents * i.quantity for i in items)
        if _insert_pending(self._conn, event, self.now, items, amount):
            return True  # the usual case: the order service is the first to record it
        if _insert_placed(self._conn, event, self.now, items) == "conflict":
            return False
        return self.set_status(event.orderId, "pending", amount_cents=amount)

    def register_order(self, event: OrderPlaced) -> bool:
        """Make sure a (to be rejected) order exists; False if the id belongs to another order."""
        return _insert_placed(self._conn, event, self.now, None) != "conflict"

    def set_status(self, order_id: str, status: str, *, amount_cents: int | None = None) -> bool:
        """Move an order to ``status`` unless it already reached a final one.

        ``amount_cents`` also sets the order's amount in the same statement (the order
        service prices the order as it accepts it).
        """
        cur = self._conn.execute(
            "UPDATE orders SET status = ?, updated_at = ?,"
            " amount_cents = COALESCE(?, amount_cents),"
            " history = json_insert(history, '$[#]', json_array(?, ?))"
            f" WHERE id = ? AND status != ? AND status NOT IN ({_FINAL_MARKS})",
            (status, self.now, amount_cents, status, self.now, order_id, status, *_FINAL_LIST),
        )
        return cur.rowcount == 1

    # -- payment primitives (the rules: services/payment.py)

    def outstanding_cents_for_update(self, customer_id: str) -> int:
        """The customer's charges minus refunds (the write lock already holds them)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents"
            " ELSE -amount_cents END), 0) FROM payments"
            " WHERE customer_id = ? AND kind IN ('charge', 'refund')",
            (customer_id,),
        ).fetchone()
        return int(row[0])

    def _record_payment(
        self,
        order_id: str,
        kind: Literal["charge", "decline", "refund"],
        customer_id: str,
        amount_cents: int,
        event_id: str,
        reason: str | None,
    ) -> bool:
        # The constraints decide: UNIQUE (order_id, kind), and one charge-or-decline per order.
        cur = self._conn.execute(
            "INSERT INTO payments (order_id, kind, customer_id, amount_cents, event_id, reason,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (order_id, kind, customer_id, amount_cents, event_id, reason, self.now),
        )
        return cur.rowcount == 1

    def record_charge(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str
    ) -> bool:
        """Record the order's charge; False if it was charged or declined before."""
        return self._record_payment(order_id, "charge", customer_id, amount_cents, event_id, None)

    def record_decline(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str, reason: str
    ) -> bool:
        """Record the order's decline; False if it was charged or declined before."""
        return self._record_payment(
            order_id, "decline", customer_id, amount_cents, event_id, reason
        )

    def charged_cents(self, order_id: str) -> int | None:
        """What the order was charged; None if it never was."""
        row = self._conn.execute(
            "SELECT amount_cents FROM payments WHERE order_id = ? AND kind = 'charge'",
            (order_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    def record_refund(
        self, order_id: str, customer_id: str, amount_cents: int, event_id: str, reason: str
    ) -> bool:
        """Record the order's refund and its refunded amount; False if refunded before."""
        if not self._record_payment(
            order_id, "refund", customer_id, amount_cents, event_id, reason
        ):
            return False
        self._conn.execute(
            "UPDATE orders SET refunded_cents = ? WHERE id = ?", (amount_cents, order_id)
        )
        return True

    # -- inventory primitives (the rules: services/inventory.py)

    def stock_for_update(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Available stock of the known products among ``product_ids`` (held: write lock)."""
        wanted = sorted(set(product_ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(
            f"SELECT id, stock FROM products WHERE id IN ({marks})", wanted
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def record_reservation(
        self,
        order_id: str,
        outcome: ReservationOutcome,
        quantities: Mapping[str, int],
        event_id: str,
    ) -> bool:
        """Record the order's reservation decision; False if it was decided before."""
        cur = self._conn.execute(
            "INSERT INTO reservations (order_id, outcome, items_json, event_id, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                order_id,
                outcome,
                to_json(dict(sorted(quantities.items()))).decode(),
                event_id,
                self.now,
            ),
        )
        return cur.rowcount == 1

    def take_stock(self, quantities: Mapping[str, int]) -> None:
        """Move ``quantities`` from stock to reserved (the CHECK refuses negative stock)."""
        self._conn.executemany(
            "UPDATE products SET stock = stock - ?, reserved = reserved + ? WHERE id = ?",
            [(qty, qty, product_id) for product_id, qty in sorted(quantities.items())],
        )

    # -- notification service

    def notify(
        self, order_id: str, event_type: str, customer_id: str, message: str, event_id: str
    ) -> bool:
        """Record the (simulated) message to the customer once per order and type."""
        cur = self._conn.execute(
            "INSERT INTO notifications (order_id, type, customer_id, message, event_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (order_id, event_type, customer_id, message, event_id, self.now),
        )
        return cur.rowcount == 1


def _idempotency_row(conn: sqlite3.Connection, key: str) -> IdempotencyRecord | None:
    row = conn.execute(
        f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE key = ?", (key,)
    ).fetchone()
    return idempotency_record(row)


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of ``ids`` as (first, last) pairs."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _insert_placed(
    conn: sqlite3.Connection,
    event: OrderPlaced,
    now: str,
    items: Sequence[PricedLineItem] | None,
) -> Literal["inserted", "exists", "conflict"]:
    """Insert an order as ``placed`` or find it.

    ``conflict`` means the id belongs to another OrderPlaced or (when ``items`` are given to
    price it) the order has already moved past ``placed``.
    """
    created = _iso(event.occurredAt)
    # ON CONFLICT (id) DO NOTHING, not INSERT OR IGNORE: only a duplicate id may be skipped,
    # any other constraint violation must raise.
    cur = conn.execute(
        "INSERT INTO orders (id, customer_id, status, source, placed_event_id, history,"
        " created_at, updated_at) VALUES (?, ?, 'placed', ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            event.orderId,
            event.payload.customerId,
            event.payload.source,
            event.eventId,
            f'[["placed","{created}"]]',  # an ISO timestamp needs no JSON escaping
            created,
            now,
        ),
    )
    if cur.rowcount == 1:
        outcome: Literal["inserted", "exists"] = "inserted"
    else:
        row = conn.execute(
            "SELECT placed_event_id, status FROM orders WHERE id = ?", (event.orderId,)
        ).fetchone()
        if row[0] != event.eventId or (items is not None and row[1] != "placed"):
            return "conflict"
        outcome = "exists"
        if items is None:
            return outcome
    lines: Sequence[LineItem] = items if items is not None else event.payload.items
    conn.executemany(
        "INSERT INTO order_items (order_id, line, product_id, quantity, unit_price_cents)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id, line) DO UPDATE SET"
        " product_id = excluded.product_id,"
        " quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents",
        [
            (event.orderId, n, i.productId, i.quantity, getattr(i, "unitPriceCents", 0))
            for n, i in enumerate(lines)
        ],
    )
    return outcome


#: Up to this many orders, _count_between reads the table by rowid range.
_ROWID_COUNT_MAX = 50_000


def _count_between(conn: sqlite3.Connection, after: int, upto: int) -> Counter[str]:
    """The orders with ``after < seq <= upto``, counted by status.

    A few rows are read by rowid range; many, from the (status, seq) index alone, which is
    several times smaller than the table (0.3 s against 1 s at a million orders). SQLite's
    planner cannot tell the two apart (the bounds are parameters), so the query says which.
    """
    if upto <= after:
        return Counter()
    many = upto - after > _ROWID_COUNT_MAX
    table = "orders INDEXED BY orders_status" if many else "orders NOT INDEXED"
    rows = conn.execute(
        f"SELECT status, COUNT(*) FROM {table} WHERE seq > ? AND seq <= ? GROUP BY status",
        (after, upto),
    )
    return Counter(dict(rows))


def _insert_pending(
    conn: sqlite3.Connection,
    event: OrderPlaced,
    now: str,
    items: Sequence[PricedLineItem],
    amount_cents: int,
) -> bool:
    """Insert a new order directly as ``pending``, priced; False if the id is taken.

    What ``_insert_placed`` followed by ``set_status("pending")`` does for an order nobody
    recorded yet, in one statement instead of two.
    """
    created = _iso(event.occurredAt)
    cur = conn.execute(
        "INSERT INTO orders (id, customer_id, status, amount_cents, source, placed_event_id,"
        " history, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            event.orderId,
            event.payload.customerId,
            amount_cents,
            event.payload.source,
            event.eventId,
            f'[["placed","{created}"],["pending","{now}"]]',
            created,
            now,
        ),
    )
    if cur.rowcount != 1:
        return False
    conn.executemany(
        "INSERT INTO order_items (order_id, line, product_id, quantity, unit_price_cents)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (event.orderId, n, i.productId, i.quantity, i.unitPriceCents)
            for n, i in enumerate(items)
        ],
    )
    return True


def _upsert_hop(
    conn: sqlite3.Connection,
    order_id: str,
    event_id: str,
    event_type: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    service: str | None,
    processed_at: str | None,
) -> None:
    # One row per event: the API records OrderPlaced where it was acknowledged, and the
    # consuming service later fills in who processed it (keeping the first consumer).
    conn.execute(
        'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
        " timestamp_ms, service, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (event_id) DO UPDATE SET"
        " service = COALESCE(journey.service, excluded.service),"
        " processed_at = COALESCE(journey.processed_at, excluded.processed_at)",
        (
            event_id,
            order_id,
            event_type,
            topic,
            partition,
            offset,
            timestamp_ms,
            service,
            processed_at,
        ),
    )


# ----------------------------------------------------------------------------- the store


class _WriterLock:
    """The lock every writer to one database takes before ``BEGIN IMMEDIATE``, across processes.

    SQLite lets one writer in at a time, and a connection that finds the database locked
    polls for it, sleeping up to 100 ms between tries: with several processes writing (two
    ``orderdeck serve`` processes, or one serving the API and another running services), most
    of an event's latency would be spent asleep. Writers queue here instead, in the kernel:
    a threading lock orders the threads of this process, and an exclusive ``flock`` on a
    sidecar file (``<db>.writer-lock``) orders the processes, so the database passes to the
    next writer the moment a transaction ends. SQLite's busy timeout still guards against
    writers that do not take this lock (the sqlite3 shell, say). The kernel drops a dead
    process's ``flock``, so a ``kill -9`` never leaves the database locked.
    """

    def __init__(self, path: Path) -> None:
        self._thread_lock = threading.Lock()
        self._path = path.with_name(path.name + ".writer-lock")
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if fcntl is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks without holding the GIL
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the sidecar file (once no Store of this database is open in the process)."""
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _Checkpointer:
    """Copies the write-ahead log back into the database file, off the writers' path.

    SQLite normally checkpoints inside the COMMIT that grows the log past 1,000 pages, and a
    checkpoint fsyncs: done there it held the write lock (and so every service of every
    process) for tens of milliseconds, and tripled the cost of a commit. Writers therefore
    leave it to this thread, which runs a PASSIVE checkpoint (it never blocks a writer or a
    reader) on its own connection every :data:`CHECKPOINT_INTERVAL_S`. One runs per database
    per process while a Store of it is open; two processes' checkpoints simply take turns.
    Should none run, SQLite's own checkpoint at :data:`WAL_AUTOCHECKPOINT_PAGES` bounds the log.
    """

    def __init__(self, path: Path) -> None:
        self.users = 0
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="orderdeck-db-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                # Busy or being closed: the next round (or SQLite itself) catches up.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    @property
    def thread(self) -> threading.Thread:
        """The thread that runs the checkpoints."""
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Database:
    """What the Stores of one database file share within a process, while any is open.

    Its writer lock (one per file, so that this process's threads queue on it before the
    kernel's) and its checkpointer thread.
    """

    def __init__(self, path: Path) -> None:
        self.writer = _WriterLock(path)
        self.checkpointer = _Checkpointer(path)
        self.users = 0


_DATABASES: dict[Path, _Database] = {}
_DATABASES_GUARD = threading.Lock()


def _attach(path: Path) -> _Database:
    """The shared parts of the database at ``path`` for one more Store (see _detach)."""
    key = path.resolve()
    with _DATABASES_GUARD:
        database = _DATABASES.get(key)
        if database is None:
            database = _DATABASES[key] = _Database(key)
        database.users += 1
        return database


def _detach(path: Path) -> None:
    """One Store fewer; the last one closes the lock file and stops the checkpointer."""
    key = path.resolve()
    with _DATABASES_GUARD:
        database = _DATABASES.get(key)
        if database is None:
            return
        database.users -= 1
        if database.users > 0:
            return
        del _DATABASES[key]
    database.writer.close()
    database.checkpointer.stop()


class SQLiteStore:
    """:class:`orderdeck.store.tx.StoreBackend` on one SQLite file: one connection, used by
    one thread at a time (the store's own, see :meth:`run`)."""

    def __init__(self, path: Path, catalog_path: Path | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        database = _attach(self.path)
        self._writer = database.writer
        self._checkpointer = database.checkpointer
        self._attached = True
        #: status_counts' tally of the orders that can no longer change: (counts, up to seq).
        self._settled: tuple[Counter[str], int] = (Counter(), 0)
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._conn.execute("PRAGMA temp_store = MEMORY")
            self._conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            self._executor: ThreadPoolExecutor | None = None
            #: Run :meth:`run` calls on the caller's thread instead of the database thread. For a
            #: process that only runs services (no API, no screen to keep responsive): a
            #: transaction takes a few milliseconds, while handing each one to another thread and
            #: back cost tens of milliseconds per batch under load (the two threads queue for
            #: Python's GIL), which was most of an event's time in such a process.
            self.run_inline = False
            with self.write():
                self._migrate()
                empty = self._conn.execute("SELECT COUNT(*) FROM products").fetchone()[0] == 0
                if empty:
                    self._seed(catalog_path or catalog_for(self.path))
        except BaseException:
            if hasattr(self, "_conn"):
                self._conn.close()
            self._attached = False
            _detach(self.path)
            raise

    def _migrate(self) -> None:
        """Bring the schema to this version's, or refuse a newer one (StoreVersionError).

        Runs inside the opening write transaction, so two processes opening a store at once
        migrate it once; the version lives in SQLite's own ``user_version`` header field.
        """
        found = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        for version in migration_steps(found, str(self.path)):
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {version}")

    def _seed(self, catalog_path: Path) -> None:
        self._conn.executemany(
            "INSERT INTO products (id, name, price_cents, stock) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [
                (p.id, p.name, p.price_cents, p.stock)
                for p in load_catalog(catalog_path, self.path.parent)
            ],
        )

    @property
    def url(self) -> StoreURL:
        """``sqlite:///`` and this store's file."""
        return StoreURL.sqlite(self.path)

    def is_transient(self, exc: BaseException) -> bool:
        """SQLite saying busy or locked: the write lock was held longer than it waits."""
        return is_transient_sqlite(exc)

    @property
    def checkpoint_thread(self) -> threading.Thread:
        """The background thread that checkpoints this database file in this process.

        Read only, for diagnostics and tests: every open Store of the same file (under any
        name) shares the one thread, which stops when the last of them closes.
        """
        return self._checkpointer.thread

    def connection_settings(self) -> ConnectionSettings:
        """The SQLite settings this store's connection runs with, read back from SQLite."""
        with self._lock:
            conn = self._conn

            def pragma(name: str) -> Any:
                return conn.execute(f"PRAGMA {name}").fetchone()[0]

            return ConnectionSettings(
                journal_mode=str(pragma("journal_mode")),
                busy_timeout_ms=int(pragma("busy_timeout")),
                wal_autocheckpoint_pages=int(pragma("wal_autocheckpoint")),
                page_size=int(pragma("page_size")),
            )

    def close(self) -> None:
        """Close the connection and the database thread (safe to call twice)."""
        with self._lock:
            self._conn.close()
            attached, self._attached = self._attached, False
        if attached:
            _detach(self.path)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (usually a method of this store) on the store's own thread.

        Async callers share one database thread and one connection per Store: the event loop
        never waits on SQLite, and SQLite's page cache stays warm, because in WAL mode a
        connection drops its cache whenever another connection has written. The services of
        a process share one Store for this reason; the API can share it too.

        With :attr:`run_inline` set the call runs right here, on the event loop's thread.
        """
        if self.run_inline:
            return fn(*args)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderdeck-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @contextmanager
    def write(self) -> Iterator[SQLiteWriteTx]:
        """One ``BEGIN IMMEDIATE`` transaction, committed when the block ends without error.

        Raises ``sqlite3.OperationalError`` ("database is locked") if the write lock could not
        be had within the busy timeout; callers treat that as transient and retry.
        """
        with self._lock, self._writer:
            self._conn.execute("BEGIN IMMEDIATE")
            tx = SQLiteWriteTx(self._conn)
            try:
                yield tx
                tx.flush_outbox()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A read transaction gives several SELECTs one consistent snapshot.
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- read side

    def get_order(self, order_id: str) -> OrderView | None:
        """One order with items, status history and journey; None if unknown."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?",
                (order_id,),
            ).fetchone()
            if row is None:
                return None
            items = conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id = ? ORDER BY line",
                (order_id,),
            ).fetchall()
            hops = conn.execute(
                f"SELECT {HOP_COLUMNS} FROM journey WHERE order_id = ?"
                " ORDER BY timestamp_ms, processed_at",
                (order_id,),
            ).fetchall()
        return order_view(row, json.loads(row[7]), items, hops)

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        """Orders newest first; returns the page and the cursor of the next page (or None).

        Raises ValueError for a cursor this store did not hand out.
        """
        limit = max(1, min(limit, 1000))
        before = decode_cursor(cursor) if cursor else None
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append("o.status = ?")
            args.append(status)
        if before is not None:
            where.append("o.seq < ?")
            args.append(before)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM orders o {clause} ORDER BY o.seq DESC LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        return summary_page(rows, limit)

    def existing_orders(self, order_ids: Sequence[str]) -> set[str]:
        """Which of ``order_ids`` the store knows (a read: no write lock is taken)."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(order_ids), 500):
                chunk = order_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT id FROM orders WHERE id IN ({marks})", chunk
                    )
                )
        return found

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of ``order_ids`` the store knows (unknown ids are left out).

        One statement whatever the count, the ids passed as one JSON array: a screen following
        a few dozen orders in flight asks every refresh, and one round per id would make the
        refresh cost grow with the list.
        """
        if not order_ids:
            return {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, status FROM orders WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(order_ids)),),
            ).fetchall()
        return {oid: status for oid, status in rows}

    def order_timings(
        self, after_seq: int, seqs: Sequence[int] = (), limit: int = 10_000
    ) -> list[OrderTiming]:
        """The orders after ``after_seq`` (oldest first, at most ``limit``) and those numbered
        ``seqs``, each with its status and timestamps: how a reader follows orders to their
        final status by reading only new orders and the ones it saw in flight (metrics)."""
        found: list[OrderTiming] = []
        columns = "SELECT seq, status, created_at, updated_at FROM orders"
        with self._read() as conn:
            rows = conn.execute(f"{columns} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
            found += (OrderTiming(*row) for row in rows)
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"{columns} WHERE seq IN ({marks})", tuple(chunk))
                found += (OrderTiming(*row) for row in rows)
        return found

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]:
        """In-flight orders accepted more than ``older_than_s`` ago, oldest first.

        Read through the ``orders_status`` index (status, seq): only the in-flight orders are
        visited, whatever the number of final ones. ``INDEXED BY`` because SQLite's statistics
        (after an ANALYZE) keep only the average rows per status, and by that average a scan
        of the table looks cheaper; in-flight statuses are always the rare ones (170 ms scan
        against under 1 ms at a million orders).
        """
        now = datetime.now(UTC)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {STUCK_COLUMNS} FROM orders o INDEXED BY orders_status"
                f" WHERE o.status IN ({_IN_FLIGHT_MARKS})"
                " AND o.created_at < ? ORDER BY o.seq LIMIT ?",
                (*_IN_FLIGHT_LIST, stuck_cutoff(older_than_s, now), limit),
            ).fetchall()
        return stuck_orders(rows, now)

    def stuck_count(self, older_than_s: float = 30.0) -> int:
        """How many orders :meth:`stuck_orders` would list without a limit (``/health``)."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT COUNT(*) FROM orders INDEXED BY orders_status"
                f" WHERE status IN ({_IN_FLIGHT_MARKS}) AND created_at < ?",
                (*_IN_FLIGHT_LIST, stuck_cutoff(older_than_s, datetime.now(UTC))),
            ).fetchone()
        return int(row[0]) if row else 0

    def list_products(self) -> list[Product]:
        """The catalog with live stock, by id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, price_cents, stock, reserved FROM products ORDER BY id"
            ).fetchall()
        return [Product(id=a, name=b, priceCents=c, stock=d, reserved=e) for a, b, c, d, e in rows]

    def status_counts(self) -> dict[str, int]:
        """How many orders are in each status.

        Screens and /health ask every second, and counting the whole table took 100-125 ms at
        a million orders (holding this connection meanwhile); this takes under 1 ms after the
        first call. A final status never changes and ``seq`` only grows, so the orders up to
        the oldest one still in flight are counted once and kept (:attr:`_settled`); each call
        counts only the orders after them, in one read transaction. Orders written by other
        processes are counted like any other.
        """
        with self._read() as conn:
            # Two index lookups: (status, seq), then the rowid.
            in_flight = conn.execute(
                f"SELECT MIN(seq) FROM orders WHERE status IN ({_IN_FLIGHT_MARKS})",
                _IN_FLIGHT_LIST,
            ).fetchone()[0]
            newest = conn.execute("SELECT MAX(seq) FROM orders").fetchone()[0] or 0
            settled_upto = newest if in_flight is None else in_flight - 1
            counts, upto = self._settled
            if settled_upto > upto:
                counts = counts + _count_between(conn, upto, settled_upto)
                upto = settled_upto
                self._settled = (counts, upto)
            return dict(counts + _count_between(conn, upto, newest))

    def payment_totals(self) -> dict[str, int]:
        """Sum of cents per payment kind (charge, refund, decline): for tests and health views."""
        with self._lock:
            rows = self._conn.execute("SELECT kind, SUM(amount_cents) FROM payments GROUP BY kind")
            return {k: n for k, n in rows}

    def effect_counts(self) -> dict[str, int]:
        """Row counts of every once-only effect; equal before and after a replay."""
        with self._read() as conn:
            out: dict[str, int] = {}
            for name, sql in (
                ("charges", "SELECT COUNT(*) FROM payments WHERE kind = 'charge'"),
                ("refunds", "SELECT COUNT(*) FROM payments WHERE kind = 'refund'"),
                ("declines", "SELECT COUNT(*) FROM payments WHERE kind = 'decline'"),
                ("reservations", "SELECT COUNT(*) FROM reservations"),
                ("notifications", "SELECT COUNT(*) FROM notifications"),
                ("history", "SELECT COALESCE(SUM(json_array_length(history)), 0) FROM orders"),
                ("outbox", "SELECT COUNT(*) FROM outbox"),
            ):
                out[name] = conn.execute(sql).fetchone()[0]
            return out

    def order_payments(self, order_id: str) -> dict[str, int]:
        """The order's payments by kind (charge/refund/decline) in cents."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, amount_cents FROM payments WHERE order_id = ?", (order_id,)
            )
            return {k: n for k, n in rows}

    def notifications_for(self, order_id: str) -> list[tuple[str, str]]:
        """(type, message) of every notification sent for an order."""
        with self._lock:
            return [
                (t, m)
                for t, m in self._conn.execute(
                    "SELECT type, message FROM notifications WHERE order_id = ? ORDER BY rowid",
                    (order_id,),
                )
            ]

    def set_stock(self, product_id: str, stock: int) -> None:
        """Set a product's available stock (tests and demos); KeyError if unknown."""
        with self.write() as tx:
            cur = tx._conn.execute(
                "UPDATE products SET stock = ? WHERE id = ?", (stock, product_id)
            )
            if cur.rowcount != 1:
                raise KeyError(product_id)

    # -- API side writes

    def record_placed(
        self,
        event: OrderPlaced,
        delivery_topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> None:
        """Record an acknowledged OrderPlaced so ``get_order`` answers at once; idempotent.

        One transaction per call; the API records concurrent placements together through
        :meth:`write` and :meth:`WriteTx.record_placed` (a commit is most of the cost).
        """
        with self.write() as tx:
            tx.record_placed(event, delivery_topic, partition, offset, timestamp_ms)

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        """The remembered response for an Idempotency-Key, if any."""
        with self._lock:
            return _idempotency_row(self._conn, key)

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """Remember a response; returns the existing row if the key was taken concurrently."""
        with self.write() as tx:
            return tx.idempotency_put(key, request_hash, order_id, response_json)

    # -- outbox maintenance (services)

    def unsent_outbox(
        self, service: str, older_than_s: float = 0.0, limit: int = 1000, after_id: int = 0
    ) -> list[OutboxRow]:
        """Outbox rows of ``service`` not yet produced, oldest first, with ids above ``after_id``.

        ``older_than_s`` skips rows a live peer has only just written and is about to send.
        """
        cutoff = (
            datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_s, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, service, topic, key, value, headers_json FROM outbox"
                " WHERE service = ? AND sent_at IS NULL AND id > ? AND created_at <= ?"
                " ORDER BY id LIMIT ?",
                (service, after_id, cutoff, limit),
            ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], _headers_from_json(r[5])) for r in rows]

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Mark outbox rows produced (acknowledged by Kafka)."""
        if not ids:
            return
        with self.write() as tx:
            tx.mark_sent(ids)

    def prune_outbox(self, older_than_s: float = 60.0, chunk: int = 2000) -> int:
        """Delete rows sent more than ``older_than_s`` ago; returns how many.

        Works in chunks from the oldest id up (sent rows are old rows, so the scan stops
        early) and in short transactions, so it never holds the write lock for long.
        """
        cutoff = (
            datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_s, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        total = 0
        while True:
            with self.write() as tx:
                cur = tx._conn.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                    " WHERE sent_at IS NOT NULL AND sent_at <= ? ORDER BY id LIMIT ?)",
                    (cutoff, chunk),
                )
            total += cur.rowcount
            if cur.rowcount < chunk:
                return total


def is_transient_sqlite(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying busy or locked (worth retrying as it was)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
