"""The PostgreSQL backend: the state of a deployment that spans several hosts.

The only module of orderdeck that imports ``psycopg``; it implements the Protocols of
``store/tx.py`` with psycopg 3 and a ``psycopg_pool`` connection pool. Every process (on any
host) opens its own pool to the one database; nothing is shared on disk, so there is no file
lock: PostgreSQL's own locking keeps the guarantees.

* One :meth:`PostgresStore.write` block is one ``READ COMMITTED`` transaction on one pooled
  connection (``BEGIN`` … ``COMMIT``); :meth:`PostgresWriteTx.savepoint` nests real savepoints.
* The uniqueness rules are constraints, and every "record once" primitive is an
  ``INSERT … ON CONFLICT DO NOTHING``: a concurrent second insert of the same key waits for the
  first transaction and then inserts nothing, so a replay in another process cannot double a
  charge, a refund, a reservation or a notification.
* Stock is read ``SELECT … FOR UPDATE`` in product-id order, so two inventory consumers (in two
  processes) reserving the same products queue on the row locks instead of both seeing the
  same stock; a ``CHECK (stock >= 0)`` backs it. A customer's outstanding charges are guarded by
  a transaction-scoped advisory lock on the customer id (the rows to lock may not exist yet).
* A deadlock (locks taken across the orders of two batches in different orders) or a
  serialization failure aborts one transaction with SQLSTATE 40P01/40001: :meth:`is_transient`
  says so and the services apply the batch again; the store's own one-statement writes retry
  up to :data:`TRANSIENT_ATTEMPTS` times themselves.
* ``status_counts`` does not count the orders table: a trigger on ``orders`` appends a
  ``(status, ±1)`` row to ``order_status_deltas`` in the writing transaction, and the counts
  are ``order_status_totals`` (one row per status) plus the sums of those deltas, which are
  folded into the totals now and then. Appending
  rather than updating one counter row per status keeps concurrent batches from queueing on
  the counters' row locks (which would serialise every commit, like SQLite's writer lock).
* Outbox ids come from a sequence that hands out blocks of :data:`OUTBOX_BLOCK` ids, so the
  rows of one transaction have consecutive ids although many transactions write at once.

The schema is versioned like the SQLite backend's (``store/schema.py``): the number of the last
step applied lives in the one-row table ``orderdeck_schema``, and the steps run under an
advisory lock in the transaction that reads it, so two processes starting at once migrate once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from pydantic_core import from_json, to_json

from orderdeck.errors import OrderdeckError
from orderdeck.events import (
    FINAL_STATUSES,
    IN_FLIGHT_STATUSES,
    LineItem,
    OrderPlaced,
    PricedLineItem,
    iso_utc,
)
from orderdeck.store.catalog import DEFAULT_CATALOG, load_catalog
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
from orderdeck.store.url import StoreConfigError, StoreURL
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

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Connections per process: the four services, the API and the screens' reads at once.
POOL_MAX = 8
CONNECT_TIMEOUT_S = 5
#: How long a call waits for a free pooled connection (or for the server to come back).
POOL_TIMEOUT_S = 30.0
#: Attempts of the store's own short transactions on a deadlock or serialization failure.
TRANSIENT_ATTEMPTS = 5
#: Outbox ids taken per sequence call: one call per transaction keeps its rows consecutive.
OUTBOX_BLOCK = 65_536
#: Namespaces of the advisory locks (arbitrary constants, fixed forever).
_MIGRATION_LOCK = 0x6F72_6465_7264_6B01
_CUSTOMER_LOCK_PREFIX = "orderdeck.customer:"

_FINAL_LIST = sorted(FINAL_STATUSES)
_IN_FLIGHT_LIST = sorted(IN_FLIGHT_STATUSES)

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS products (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    stock       bigint NOT NULL CHECK (stock >= 0),
    reserved    bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE IF NOT EXISTS orders (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    customer_id     text NOT NULL,
    status          text NOT NULL,
    amount_cents    bigint NOT NULL DEFAULT 0,
    refunded_cents  bigint NOT NULL DEFAULT 0,
    source          text NOT NULL DEFAULT 'api',
    placed_event_id text NOT NULL,
    history         jsonb NOT NULL,
    created_at      text NOT NULL,
    updated_at      text NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, seq);
CREATE TABLE IF NOT EXISTS order_items (
    order_id         text NOT NULL,
    line             integer NOT NULL,
    product_id       text NOT NULL,
    quantity         integer NOT NULL,
    unit_price_cents bigint NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE IF NOT EXISTS payments (
    order_id     text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('charge', 'refund', 'decline')),
    customer_id  text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    event_id     text NOT NULL,
    reason       text,
    created_at   text NOT NULL,
    UNIQUE (order_id, kind)
);
CREATE INDEX IF NOT EXISTS payments_customer ON payments (customer_id, kind);
CREATE UNIQUE INDEX IF NOT EXISTS payments_decision ON payments (order_id)
    WHERE kind IN ('charge', 'decline');
CREATE TABLE IF NOT EXISTS reservations (
    order_id   text PRIMARY KEY,
    outcome    text NOT NULL CHECK (outcome IN ('reserved', 'out_of_stock')),
    items_json text NOT NULL,
    event_id   text NOT NULL,
    created_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    text NOT NULL,
    type        text NOT NULL,
    customer_id text NOT NULL,
    message     text NOT NULL,
    event_id    text NOT NULL,
    created_at  text NOT NULL,
    UNIQUE (order_id, type)
);
CREATE TABLE IF NOT EXISTS journey (
    event_id     text PRIMARY KEY,
    order_id     text NOT NULL,
    type         text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    "offset"     bigint NOT NULL,
    timestamp_ms bigint NOT NULL,
    service      text,
    processed_at text
);
CREATE INDEX IF NOT EXISTS journey_order ON journey (order_id);
CREATE SEQUENCE IF NOT EXISTS outbox_blocks AS bigint INCREMENT BY 65536 MINVALUE 1 START 1;
CREATE TABLE IF NOT EXISTS outbox (
    id           bigint PRIMARY KEY,
    service      text NOT NULL,
    topic        text NOT NULL,
    key          bytea,
    value        bytea,
    headers_json text NOT NULL,
    created_at   text NOT NULL,
    sent_at      text
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (service, id) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key           text PRIMARY KEY,
    request_hash  text NOT NULL,
    order_id      text NOT NULL,
    response_json text NOT NULL,
    created_at    text NOT NULL
)
"""

# Step 2: the status counts (see the module docstring). The trigger exists before the fill,
# and CREATE TRIGGER locks out writers of ``orders`` until this transaction commits, so no
# status change is missed or counted twice.
_SCHEMA_V2 = (
    "CREATE TABLE IF NOT EXISTS order_status_deltas (status text NOT NULL, delta bigint NOT NULL)",
    """CREATE OR REPLACE FUNCTION orderdeck_count_status() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO order_status_deltas VALUES (NEW.status, 1);
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO order_status_deltas VALUES (OLD.status, -1);
        ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
            INSERT INTO order_status_deltas VALUES (OLD.status, -1), (NEW.status, 1);
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER orders_count_status AFTER INSERT OR DELETE OR UPDATE OF status ON orders"
    " FOR EACH ROW EXECUTE FUNCTION orderdeck_count_status()",
    "CREATE TABLE IF NOT EXISTS order_status_totals (status text PRIMARY KEY, n bigint NOT NULL)",
    "INSERT INTO order_status_totals SELECT status, COUNT(*) FROM orders GROUP BY status",
)

#: One step per schema version (the same numbers as the SQLite backend's), in this dialect:
#: its statements, in order.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: tuple(s for s in _SCHEMA_V1.split(";") if s.strip()),
    2: _SCHEMA_V2,
}
#: Rows of order_status_deltas above which status_counts folds them into one per status.
STATUS_DELTAS_FOLD_AT = 2048


class StoreUnavailableError(OrderdeckError):
    """The PostgreSQL server could not be reached (or refused us) when the store opened."""


def _iso(value: datetime) -> str:
    return iso_utc(value, "milliseconds")


def _cutoff(older_than_s: float) -> str:
    return _iso(datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_s, UTC))


def _headers_to_json(headers: Sequence[tuple[str, bytes]]) -> str:
    # Latin-1 maps every byte to one code point, so any header value survives the round trip.
    return to_json([[k, v.decode("latin-1")] for k, v in headers]).decode()


def _headers_from_json(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode("latin-1")) for k, v in from_json(text))


def _ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of ``ids`` as (first, last) pairs."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def is_transient_postgres(exc: BaseException) -> bool:
    """Whether ``exc`` means "apply it again as it was".

    A deadlock or serialization failure (SQLSTATE class 40), a lost or refused connection, a
    server shutting down, no pooled connection within :data:`POOL_TIMEOUT_S`: psycopg raises
    all of them as :class:`psycopg.OperationalError` (the pool: PoolTimeout). Constraint
    violations and programming errors are not, and must not be retried as they were.
    """
    return isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout)


def _where(url: StoreURL) -> str:
    """``host:port`` and the user, for messages (never the password)."""
    port = url.port if url.port is not None else 5432
    user = url.user or "(default user)"
    return f"PostgreSQL at {url.host}:{port} (database {url.database!r}, user {user!r})"


def _explain_connect_failure(url: StoreURL, exc: psycopg.Error) -> OrderdeckError:
    """One line for a failed first connection: what failed and where, never the password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if url.password:
        text = text.replace(url.password, "***")
    lowered = text.lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate in ("28P01", "28000") or "password" in lowered or "authentication" in lowered:
        return StoreConfigError(f"{_where(url)} refused the credentials: {text}")
    if sqlstate == "3D000" or "does not exist" in lowered:
        return StoreConfigError(f"{_where(url)}: {text}")
    return StoreUnavailableError(f"cannot reach {_where(url)}: {text}")


def check_reachable(url: StoreURL) -> None:
    """Connect once and disconnect: StoreConfigError (credentials, unknown database) or
    StoreUnavailableError (no server), as one line naming host:port and the user."""
    try:
        with psycopg.connect(url.connection_url(), connect_timeout=CONNECT_TIMEOUT_S):
            pass
    except psycopg.Error as exc:
        raise _explain_connect_failure(url, exc) from None


class PostgresWriteTx:
    """:class:`orderdeck.store.tx.WriteTx` on one PostgreSQL transaction.

    Obtained from :meth:`PostgresStore.write`; never kept beyond the ``with`` block.
    """

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._conn = conn
        self.now = now_iso()
        #: Outgoing records of this transaction, in order; inserted together before COMMIT.
        self.outbox: list[OutboxRow] = []
        self._next_outbox_id: int | None = None
        self._block_end = 0
        self._prices: dict[str, int | None] = {}

    def _execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor[tuple[Any, ...]]:
        return self._conn.execute(query, params)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block that is rolled back on its own if it raises (the batch goes on).

        A failed statement aborts a PostgreSQL transaction until it is rolled back to a
        savepoint, so this is also what lets the rest of a batch commit after one record fails.
        """
        mark = len(self.outbox)
        try:
            with self._conn.transaction():  # nested: a SAVEPOINT
                yield
        except BaseException:
            if mark < len(self.outbox):
                self._next_outbox_id = self.outbox[mark].id  # ids stay consecutive
                del self.outbox[mark:]
            raise

    # -- bookkeeping shared by every service

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Mark outbox rows produced (acknowledged by Kafka); usually one range update."""
        if not ids:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                "UPDATE outbox SET sent_at = %s WHERE id BETWEEN %s AND %s AND sent_at IS NULL",
                [(self.now, lo, hi) for lo, hi in _ranges(ids)],
            )

    def mark_processed(self, service: str, event_id: str) -> bool:
        """Claim ``event_id`` for ``service`` without a journey hop; False if already claimed."""
        cur = self._execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at) VALUES (%s, '', '', '', -1, -1, 0, %s, %s)"
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
        """Record the journey hop of a consumed event and claim it; False for a replay.

        A second consumer of the same event (in another process, during a rebalance) waits on
        the row's lock and then finds it claimed.
        """
        cur = self._execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
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
        """:meth:`consume` for a batch in one statement: one round trip instead of one each."""
        if not hops:
            return set()
        cur = self._execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at)"
            " SELECT e, o, t, tp, p, f, ts, %s, %s FROM unnest(%s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::integer[], %s::bigint[], %s::bigint[])"
            " AS h(e, o, t, tp, p, f, ts)"
            " ON CONFLICT (event_id) DO UPDATE SET"
            " service = excluded.service, processed_at = excluded.processed_at"
            " WHERE journey.service IS NULL RETURNING event_id",
            (
                service,
                self.now,
                [h.event_id for h in hops],
                [h.order_id for h in hops],
                [h.event_type for h in hops],
                [h.topic for h in hops],
                [h.partition for h in hops],
                [h.offset for h in hops],
                [h.timestamp_ms for h in hops],
            ),
        )
        return {str(row[0]) for row in cur.fetchall()}

    def add_outbox(
        self,
        service: str,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> OutboxRow:
        """Append an outgoing record; it is produced after this transaction commits.

        Ids come from a block of :data:`OUTBOX_BLOCK` taken from the ``outbox_blocks`` sequence
        on the first row (sequences ignore transactions, so no other writer waits for this
        one); a transaction with more rows than a block takes another.
        """
        if self._next_outbox_id is None or self._next_outbox_id >= self._block_end:
            row = self._execute("SELECT nextval('outbox_blocks')").fetchone()
            assert row is not None
            self._next_outbox_id = int(row[0])
            self._block_end = self._next_outbox_id + OUTBOX_BLOCK
        out = OutboxRow(self._next_outbox_id, service, topic, key, value, tuple(headers))
        self._next_outbox_id += 1
        self.outbox.append(out)
        return out

    def flush_outbox(self) -> None:
        """Insert the transaction's outgoing records (``write`` calls it before COMMIT)."""
        if not self.outbox:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO outbox (id, service, topic, key, value, headers_json, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        r.id,
                        r.service,
                        r.topic,
                        r.key,
                        r.value,
                        _headers_to_json(r.headers),
                        self.now,
                    )
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
        """Record an acknowledged OrderPlaced, priced from the catalog; idempotent."""
        if self._insert_placed(event, None) == "inserted":
            items = event.payload.items
            prices = self.product_prices([i.productId for i in items])
            with self._conn.cursor() as cur:
                cur.executemany(
                    "UPDATE order_items SET unit_price_cents = %s"
                    " WHERE order_id = %s AND line = %s",
                    [(prices.get(i.productId, 0), event.orderId, n) for n, i in enumerate(items)],
                )
            amount = sum(prices.get(i.productId, 0) * i.quantity for i in items)
            self._execute(
                "UPDATE orders SET amount_cents = %s WHERE id = %s", (amount, event.orderId)
            )
        # One row per event: the consuming service later fills in who processed it.
        self._execute(
            'INSERT INTO journey (event_id, order_id, type, topic, partition, "offset",'
            " timestamp_ms, service, processed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL)"
            " ON CONFLICT (event_id) DO NOTHING",
            (
                event.eventId,
                event.orderId,
                event.type,
                delivery_topic,
                partition,
                offset,
                timestamp_ms,
            ),
        )

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """Remember a response for ``key``; returns the row that holds the key now."""
        self._execute(
            "INSERT INTO idempotency_keys (key, request_hash, order_id, response_json,"
            " created_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (key, request_hash, order_id, response_json, self.now),
        )
        record = _idempotency_row(self._conn, key)
        assert record is not None
        return record

    # -- orders

    def product_prices(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Catalog prices of the known products among ``product_ids`` (once per transaction)."""
        prices = self._prices
        missing = sorted({p for p in product_ids if p not in prices})
        if missing:
            rows = self._execute(
                "SELECT id, price_cents FROM products WHERE id = ANY(%s)", (missing,)
            ).fetchall()
            prices.update({p: None for p in missing})
            prices.update({r[0]: int(r[1]) for r in rows})
        return {p: price for p in product_ids if (price := prices[p]) is not None}

    def accept_order(self, event: OrderPlaced, items: Sequence[PricedLineItem]) -> bool:
        """Store a validated order as ``pending`` with its prices; False if it is not ours."""
        amount = sum(i.unitPriceCents * i.quantity for i in items)
        if self._insert_pending(event, items, amount):
            return True  # the usual case: the order service is the first to record it
        if self._insert_placed(event, items) == "conflict":
            return False
        return self.set_status(event.orderId, "pending", amount_cents=amount)

    def register_order(self, event: OrderPlaced) -> bool:
        """Make sure a (to be rejected) order exists; False if the id belongs to another."""
        return self._insert_placed(event, None) != "conflict"

    def set_status(self, order_id: str, status: str, *, amount_cents: int | None = None) -> bool:
        """Move an order to ``status`` unless it is there or final; appends to its history."""
        cur = self._execute(
            "UPDATE orders SET status = %s, updated_at = %s,"
            " amount_cents = COALESCE(%s::bigint, amount_cents),"
            " history = history || jsonb_build_array(jsonb_build_array(%s::text, %s::text))"
            " WHERE id = %s AND status <> %s AND NOT (status = ANY(%s))",
            (status, self.now, amount_cents, status, self.now, order_id, status, _FINAL_LIST),
        )
        return cur.rowcount == 1

    def _insert_placed(
        self, event: OrderPlaced, items: Sequence[PricedLineItem] | None
    ) -> Literal["inserted", "exists", "conflict"]:
        """Insert an order as ``placed`` or find it (see the SQLite backend's twin)."""
        created = _iso(event.occurredAt)
        cur = self._execute(
            "INSERT INTO orders (id, customer_id, status, source, placed_event_id, history,"
            " created_at, updated_at) VALUES (%s, %s, 'placed', %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (
                event.orderId,
                event.payload.customerId,
                event.payload.source,
                event.eventId,
                Jsonb([["placed", created]]),
                created,
                self.now,
            ),
        )
        if cur.rowcount == 1:
            outcome: Literal["inserted", "exists"] = "inserted"
        else:
            row = self._execute(
                "SELECT placed_event_id, status FROM orders WHERE id = %s", (event.orderId,)
            ).fetchone()
            assert row is not None
            if row[0] != event.eventId or (items is not None and row[1] != "placed"):
                return "conflict"
            outcome = "exists"
            if items is None:
                return outcome
        lines: Sequence[LineItem] = items if items is not None else event.payload.items
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO order_items (order_id, line, product_id, quantity, unit_price_cents)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (order_id, line) DO UPDATE SET"
                " product_id = excluded.product_id,"
                " quantity = excluded.quantity, unit_price_cents = excluded.unit_price_cents",
                [
                    (event.orderId, n, i.productId, i.quantity, getattr(i, "unitPriceCents", 0))
                    for n, i in enumerate(lines)
                ],
            )
        return outcome

    def _insert_pending(
        self, event: OrderPlaced, items: Sequence[PricedLineItem], amount_cents: int
    ) -> bool:
        """Insert a new order directly as ``pending``, priced; False if the id is taken.

        The order and its lines go in one statement (a round trip per record is the order
        service's main cost on this engine): the lines are inserted only when the order was.
        """
        created = _iso(event.occurredAt)
        cur = self._execute(
            "WITH o AS (INSERT INTO orders (id, customer_id, status, amount_cents, source,"
            " placed_event_id, history, created_at, updated_at)"
            " VALUES (%s, %s, 'pending', %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING id)"
            " INSERT INTO order_items (order_id, line, product_id, quantity, unit_price_cents)"
            " SELECT o.id, t.line, t.product_id, t.quantity, t.unit_price_cents FROM o,"
            " unnest(%s::integer[], %s::text[], %s::integer[], %s::bigint[])"
            " AS t(line, product_id, quantity, unit_price_cents)",
            (
                event.orderId,
                event.payload.customerId,
                amount_cents,
                event.payload.source,
                event.eventId,
                Jsonb([["placed", created], ["pending", self.now]]),
                created,
                self.now,
                list(range(len(items))),
                [i.productId for i in items],
                [i.quantity for i in items],
                [i.unitPriceCents for i in items],
            ),
        )
        return cur.rowcount > 0  # an order has at least one line (validated before)

    # -- payment primitives (the rules: services/payment.py)

    def outstanding_cents_for_update(self, customer_id: str) -> int:
        """The customer's charges minus refunds, under a lock held until this transaction ends.

        An advisory lock on the customer id, not row locks: a customer's first charge has no
        rows to lock, and two first charges must still not both pass the credit limit.
        """
        self._execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (_CUSTOMER_LOCK_PREFIX + customer_id,),
        )
        row = self._execute(
            "SELECT COALESCE(SUM(CASE kind WHEN 'charge' THEN amount_cents"
            " ELSE -amount_cents END), 0) FROM payments"
            " WHERE customer_id = %s AND kind IN ('charge', 'refund')",
            (customer_id,),
        ).fetchone()
        assert row is not None
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
        cur = self._execute(
            "INSERT INTO payments (order_id, kind, customer_id, amount_cents, event_id, reason,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
        row = self._execute(
            "SELECT amount_cents FROM payments WHERE order_id = %s AND kind = 'charge'",
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
        self._execute(
            "UPDATE orders SET refunded_cents = %s WHERE id = %s", (amount_cents, order_id)
        )
        return True

    # -- inventory primitives (the rules: services/inventory.py)

    def stock_for_update(self, product_ids: Sequence[str]) -> dict[str, int]:
        """Available stock of the known products among ``product_ids``, row-locked.

        Locked in product-id order (the rows are locked as the sorted result is read), so two
        transactions wanting the same products take them in the same order and queue.
        """
        wanted = sorted(set(product_ids))
        if not wanted:
            return {}
        rows = self._execute(
            "SELECT id, stock FROM products WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (wanted,),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def record_reservation(
        self,
        order_id: str,
        outcome: ReservationOutcome,
        quantities: Mapping[str, int],
        event_id: str,
    ) -> bool:
        """Record the order's reservation decision; False if it was decided before."""
        cur = self._execute(
            "INSERT INTO reservations (order_id, outcome, items_json, event_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
        with self._conn.cursor() as cur:
            cur.executemany(
                "UPDATE products SET stock = stock - %s, reserved = reserved + %s WHERE id = %s",
                [(qty, qty, product_id) for product_id, qty in sorted(quantities.items())],
            )

    # -- notifications

    def notify(
        self, order_id: str, event_type: str, customer_id: str, message: str, event_id: str
    ) -> bool:
        """Record the (simulated) message to the customer once per order and type."""
        cur = self._execute(
            "INSERT INTO notifications (order_id, type, customer_id, message, event_id,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (order_id, event_type, customer_id, message, event_id, self.now),
        )
        return cur.rowcount == 1


def _idempotency_row(
    conn: psycopg.Connection[tuple[Any, ...]], key: str
) -> IdempotencyRecord | None:
    row = conn.execute(
        f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE key = %s", (key,)
    ).fetchone()
    return idempotency_record(row)


class PostgresStore:
    """:class:`orderdeck.store.tx.StoreBackend` on a PostgreSQL database.

    Thread-safe: each call takes a connection from the pool for its duration, so the API's
    reads run beside the services' transactions instead of queueing behind them.
    """

    def __init__(
        self,
        url: StoreURL,
        catalog_path: Path | None = None,
        *,
        pool_max: int = POOL_MAX,
    ) -> None:
        if url.scheme != "postgresql":
            raise StoreConfigError(f"not a postgresql store URL: {url.redacted()}")
        self._url = url
        self._pool_max = pool_max
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._executor_guard = threading.Lock()
        #: As on SQLite: run :meth:`run` calls on the caller's thread.
        self.run_inline = False
        self._check_reachable()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = (
            psycopg_pool.ConnectionPool(
                url.connection_url(),
                min_size=1,
                max_size=pool_max,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                timeout=POOL_TIMEOUT_S,
                name="orderdeck-store",
                open=False,
            )
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
            self._retrying(lambda: self._migrate_and_seed(catalog_path or DEFAULT_CATALOG))
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailableError(
                f"cannot reach {_where(url)}: no connection within {CONNECT_TIMEOUT_S * 2} s"
            ) from exc
        except BaseException:
            self._pool.close()
            raise

    def _check_reachable(self) -> None:
        """One plain connection first, so a wrong password or host fails with its reason
        (the pool would only time out, and log the reason)."""
        check_reachable(self._url)

    def _migrate_and_seed(self, catalog_path: Path) -> None:
        """Bring the schema to this version's (or refuse a newer one), and seed an empty
        catalog, in one transaction under an advisory lock: concurrent openers take turns."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orderdeck_schema ("
                " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
                " version integer NOT NULL)"
            )
            row = conn.execute("SELECT version FROM orderdeck_schema").fetchone()
            found = int(row[0]) if row else 0
            for version in migration_steps(found, self._url.redacted()):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO orderdeck_schema (one, version) VALUES (true, %s)"
                    " ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                    (version,),
                )
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM products)").fetchone()
            if empty and empty[0]:
                entries = load_catalog(catalog_path, catalog_path.parent)
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO products (id, name, price_cents, stock)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(p.id, p.name, p.price_cents, p.stock) for p in entries],
                    )

    def schema_version(self) -> int:
        """The schema version recorded in the database (diagnostics and tests)."""
        with self._pool.connection() as conn:
            row = conn.execute("SELECT version FROM orderdeck_schema").fetchone()
        return int(row[0]) if row else 0

    @property
    def url(self) -> StoreURL:
        """Where this store lives (its password never shows when printed)."""
        return self._url

    def is_transient(self, exc: BaseException) -> bool:
        """A deadlock, serialization failure or lost connection (see is_transient_postgres)."""
        return is_transient_postgres(exc)

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run a short transaction again on a deadlock or serialization failure, a bounded
        number of times (other transient failures are left to the caller's retries)."""
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return fn()
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as exc:
                if attempt == TRANSIENT_ATTEMPTS:
                    raise
                log.info("store: %s; retrying (%d)", exc.sqlstate, attempt)
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the pool and the store's threads (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        with self._executor_guard:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call off the event loop, on one of the store's threads.

        As many threads as pooled connections, so independent calls (a batch of one service,
        a read of the API) run side by side; with :attr:`run_inline` it runs right here.
        """
        if self.run_inline:
            return fn(*args)
        with self._executor_guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._pool_max, thread_name_prefix="orderdeck-pg"
                )
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    @contextmanager
    def write(self) -> Iterator[PostgresWriteTx]:
        """One transaction on one pooled connection, committed when the block ends cleanly."""
        with self._pool.connection() as conn, conn.transaction():
            tx = PostgresWriteTx(conn)
            yield tx
            tx.flush_outbox()

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A read-only snapshot: several SELECTs that see one consistent state."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A pooled connection in autocommit, for a read of one statement."""
        with self._pool.connection() as conn:
            yield conn

    # -- reads

    def get_order(self, order_id: str) -> OrderView | None:
        """One order with items, status history and journey; None if unknown."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = %s",
                (order_id,),
            ).fetchone()
            if row is None:
                return None
            items = conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id = %s ORDER BY line",
                (order_id,),
            ).fetchall()
            hops = conn.execute(
                f"SELECT {HOP_COLUMNS} FROM journey WHERE order_id = %s"
                " ORDER BY timestamp_ms, processed_at NULLS FIRST",
                (order_id,),
            ).fetchall()
        return order_view(row, row[7], items, hops)

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        """Orders newest first and the next page's cursor; ValueError for a foreign cursor."""
        limit = max(1, min(limit, 1000))
        before = decode_cursor(cursor) if cursor else None
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append("o.status = %s")
            args.append(status)
        if before is not None:
            where.append("o.seq < %s")
            args.append(before)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM orders o {clause} ORDER BY o.seq DESC LIMIT %s",
                (*args, limit + 1),
            ).fetchall()
        return summary_page(rows, limit)

    def existing_orders(self, order_ids: Sequence[str]) -> set[str]:
        """Which of ``order_ids`` the store knows."""
        if not order_ids:
            return set()
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id FROM orders WHERE id = ANY(%s)", (list(order_ids),)
            ).fetchall()
        return {r[0] for r in rows}

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of ``order_ids`` the store knows, in one statement."""
        if not order_ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, status FROM orders WHERE id = ANY(%s)", (list(order_ids),)
            ).fetchall()
        return {oid: status for oid, status in rows}

    def order_timings(
        self, after_seq: int, seqs: Sequence[int] = (), limit: int = 10_000
    ) -> list[OrderTiming]:
        """The orders after ``after_seq`` (oldest first, at most ``limit``) and those
        numbered ``seqs``, with status and timestamps."""
        columns = "SELECT seq, status, created_at, updated_at FROM orders"
        with self._read() as conn:
            found = [
                OrderTiming(*row)
                for row in conn.execute(
                    f"{columns} WHERE seq > %s ORDER BY seq LIMIT %s",
                    (after_seq, limit),
                )
            ]
            if seqs:
                found += (
                    OrderTiming(*row)
                    for row in conn.execute(
                        f"{columns} WHERE seq = ANY(%s)",
                        (list(seqs),),
                    )
                )
        return found

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]:
        """In-flight orders accepted more than ``older_than_s`` ago, oldest first.

        Read through the ``orders_status`` index (status, seq): only the in-flight orders are
        visited, whatever the number of final ones.
        """
        now = datetime.now(UTC)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {STUCK_COLUMNS} FROM orders o WHERE o.status = ANY(%s)"
                " AND o.created_at < %s ORDER BY o.seq LIMIT %s",
                (_IN_FLIGHT_LIST, stuck_cutoff(older_than_s, now), limit),
            ).fetchall()
        return stuck_orders(rows, now)

    def stuck_count(self, older_than_s: float = 30.0) -> int:
        """How many orders :meth:`stuck_orders` would list without a limit (``/health``)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM orders WHERE status = ANY(%s) AND created_at < %s",
                (_IN_FLIGHT_LIST, stuck_cutoff(older_than_s, datetime.now(UTC))),
            ).fetchone()
        return int(row[0]) if row else 0

    def list_products(self) -> list[Product]:
        """The catalog with live stock, by id."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, name, price_cents, stock, reserved FROM products ORDER BY id"
            ).fetchall()
        return [Product(id=a, name=b, priceCents=c, stock=d, reserved=e) for a, b, c, d, e in rows]

    def status_counts(self) -> dict[str, int]:
        """How many orders are in each status: the sums of ``order_status_deltas``.

        The deltas are written by a trigger in each writing transaction, so a committed
        status change is counted at once, and the read stays small however many orders there
        are. Past :data:`STATUS_DELTAS_FOLD_AT` rows the read folds them (one statement:
        another process folding at the same time skips the rows already folded) and vacuums
        the table, whose dead rows the next reads would otherwise scan.
        """
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT status, SUM(n), COUNT(*) FILTER (WHERE delta) FROM ("
                " SELECT status, n, false AS delta FROM order_status_totals UNION ALL"
                " SELECT status, delta, true FROM order_status_deltas) AS c GROUP BY status"
            ).fetchall()
            if sum(int(r[2]) for r in rows) > STATUS_DELTAS_FOLD_AT:
                # In status order, so two folding processes lock the totals' rows alike.
                conn.execute(
                    "WITH folded AS (DELETE FROM order_status_deltas RETURNING status, delta)"
                    " INSERT INTO order_status_totals AS t"
                    " SELECT status, SUM(delta) FROM folded GROUP BY status ORDER BY status"
                    " ON CONFLICT (status) DO UPDATE SET n = t.n + excluded.n"
                )
                # Emptied, the table's pages go back at the vacuum; until then reads scan them.
                conn.execute("VACUUM order_status_deltas")
        return {status: int(n) for status, n, _ in rows if n}

    def payment_totals(self) -> dict[str, int]:
        """Sum of cents per payment kind (charge, refund, decline)."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT kind, SUM(amount_cents) FROM payments GROUP BY kind"
            ).fetchall()
        return {k: int(n) for k, n in rows}

    def effect_counts(self) -> dict[str, int]:
        """Row counts of every once-only effect; equal before and after a replay."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT"
                " (SELECT COUNT(*) FROM payments WHERE kind = 'charge'),"
                " (SELECT COUNT(*) FROM payments WHERE kind = 'refund'),"
                " (SELECT COUNT(*) FROM payments WHERE kind = 'decline'),"
                " (SELECT COUNT(*) FROM reservations),"
                " (SELECT COUNT(*) FROM notifications),"
                " (SELECT COALESCE(SUM(jsonb_array_length(history)), 0) FROM orders),"
                " (SELECT COUNT(*) FROM outbox)"
            ).fetchone()
        assert row is not None
        names = (
            "charges",
            "refunds",
            "declines",
            "reservations",
            "notifications",
            "history",
            "outbox",
        )
        return {name: int(value) for name, value in zip(names, row, strict=True)}

    def order_payments(self, order_id: str) -> dict[str, int]:
        """The order's payments by kind (charge/refund/decline) in cents."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT kind, amount_cents FROM payments WHERE order_id = %s", (order_id,)
            ).fetchall()
        return {k: int(n) for k, n in rows}

    def notifications_for(self, order_id: str) -> list[tuple[str, str]]:
        """(type, message) of every notification sent for an order, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT type, message FROM notifications WHERE order_id = %s ORDER BY id",
                (order_id,),
            ).fetchall()
        return [(t, m) for t, m in rows]

    # -- single-transaction writes

    def set_stock(self, product_id: str, stock: int) -> None:
        """Set a product's available stock (tests and demos); KeyError if unknown."""

        def apply() -> int:
            with self.write() as tx:
                return tx._execute(
                    "UPDATE products SET stock = %s WHERE id = %s", (stock, product_id)
                ).rowcount

        if self._retrying(apply) != 1:
            raise KeyError(product_id)

    def record_placed(
        self,
        event: OrderPlaced,
        delivery_topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> None:
        """:meth:`PostgresWriteTx.record_placed` in a transaction of its own."""

        def apply() -> None:
            with self.write() as tx:
                tx.record_placed(event, delivery_topic, partition, offset, timestamp_ms)

        self._retrying(apply)

    def idempotency_get(self, key: str) -> IdempotencyRecord | None:
        """The remembered response for an Idempotency-Key, if any."""
        with self._conn() as conn:
            return _idempotency_row(conn, key)

    def idempotency_put(
        self, key: str, request_hash: str, order_id: str, response_json: str
    ) -> IdempotencyRecord:
        """Remember a response; returns the existing row if the key was taken concurrently."""

        def apply() -> IdempotencyRecord:
            with self.write() as tx:
                return tx.idempotency_put(key, request_hash, order_id, response_json)

        return self._retrying(apply)

    # -- the outbox's upkeep

    def unsent_outbox(
        self, service: str, older_than_s: float = 0.0, limit: int = 1000, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows of ``service`` not yet produced, oldest first, with ids above ``after_id``."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, service, topic, key, value, headers_json FROM outbox"
                " WHERE service = %s AND sent_at IS NULL AND id > %s AND created_at <= %s"
                " ORDER BY id LIMIT %s",
                (service, after_id, _cutoff(older_than_s), limit),
            ).fetchall()
        return [
            OutboxRow(
                int(r[0]),
                r[1],
                r[2],
                None if r[3] is None else bytes(r[3]),
                None if r[4] is None else bytes(r[4]),
                _headers_from_json(r[5]),
            )
            for r in rows
        ]

    def mark_sent(self, ids: Sequence[int]) -> None:
        """Mark outbox rows produced, in a transaction of its own."""
        if not ids:
            return

        def apply() -> None:
            with self.write() as tx:
                tx.mark_sent(ids)

        self._retrying(apply)

    def prune_outbox(self, older_than_s: float = 60.0, chunk: int = 2000) -> int:
        """Delete rows sent more than ``older_than_s`` ago, in short transactions; how many."""
        cutoff = _cutoff(older_than_s)
        total = 0
        while True:
            with self._conn() as conn:
                deleted = conn.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                    " WHERE sent_at IS NOT NULL AND sent_at <= %s ORDER BY id LIMIT %s)",
                    (cutoff, chunk),
                ).rowcount
            total += deleted
            if deleted < chunk:
                return total


def open_backend(url: StoreURL, *, catalog_path: Path | None = None) -> PostgresStore:
    """What :func:`orderdeck.store.open_store` calls for a ``postgresql://`` URL."""
    return PostgresStore(url, catalog_path)


__all__ = [
    "PostgresStore",
    "PostgresWriteTx",
    "StoreUnavailableError",
    "check_reachable",
    "is_transient_postgres",
    "open_backend",
]
