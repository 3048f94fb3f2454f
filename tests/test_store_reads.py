"""The reads the control center makes on every refresh: right answers on both engines, and
one statement each however many orders they cover (the UI must not do a query per row)."""

from __future__ import annotations

import sqlite3

from orderdeck.events import LineItem, OrderPlaced, OrderPlacedPayload
from orderdeck.store import StoreBackend
from orderdeck.store.sqlite import SQLiteStore


def _place(store: StoreBackend, count: int) -> list[str]:
    ids = [f"order-{i:05d}" for i in range(count)]
    for offset, oid in enumerate(ids):
        event = OrderPlaced(
            orderId=oid,
            correlationId=oid,
            payload=OrderPlacedPayload(
                customerId="reader", items=[LineItem(productId="sku-mouse", quantity=1)]
            ),
        )
        store.record_placed(event, "order-events", 0, offset, offset)
    return ids


def test_order_statuses_answers_known_ids_and_leaves_out_unknown(store: StoreBackend) -> None:
    ids = _place(store, 620)
    asked = [*ids, "no-such-order"]
    statuses = store.order_statuses(asked)
    assert statuses == dict.fromkeys(ids, "placed")
    assert store.order_statuses([]) == {}


def _statements(store: SQLiteStore, call: object) -> list[str]:
    seen: list[str] = []
    conn: sqlite3.Connection = store._conn
    conn.set_trace_callback(seen.append)
    try:
        assert callable(call)
        call()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_list_reads_are_one_statement_whatever_the_count(store: StoreBackend) -> None:
    if not isinstance(store, SQLiteStore):
        return  # the statement trace is SQLite's; the PostgreSQL query is one ANY(%s)
    ids = _place(store, 620)
    selects = _statements(store, lambda: store.order_statuses(ids))
    assert len(selects) == 1, selects
    selects = _statements(store, lambda: store.list_orders(limit=100))
    assert len(selects) == 1, selects
    selects = _statements(store, lambda: store.list_orders(status="placed", limit=100))
    assert len(selects) == 1, selects
