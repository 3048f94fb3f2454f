"""The control center keeps answering keys while the store is slow to answer.

The store here is a real SQLite file with many orders, the newest one carrying a long
journey; its one thread is kept busy by a long query that SQLite itself works through (as a
big count or a slow disk would), so every read a screen asks for waits behind it. The screens
must read on the store's thread (``DeckScreen.read_store``) and show the answer when it
arrives, with keys handled meanwhile; an answer that a newer request overtook is never shown.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderdeck.app import OrderDeckApp
from orderdeck.screens.groups import GroupsScreen
from orderdeck.screens.orders import OrdersScreen
from orderdeck.store import open_store
from orderdeck.store.sqlite import SQLiteStore
from orderdeck.store.url import default_store_url
from orderdeck.widgets.journey import JourneyView
from orderdeck.widgets.row_list import RowList
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import reads_settled, until, until_ready

ORDERS = 20_000
HEAVY_HOPS = 20_000
HEAVY = "ffffffff-0000-7000-8000-00000000heavy"
#: Rows SQLite counts through while the store's thread is busy (several seconds' work).
BUSY_ROWS = 30_000_000


def _order_id(n: int) -> str:
    return f"{n:08d}-0000-7000-8000-{n:012d}"


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    """A real store: many confirmed orders, and a newest one with a very long journey."""
    directory = tmp_path_factory.mktemp("big-store")
    open_store(default_store_url(directory)).close()
    conn = sqlite3.connect(directory / "orderdeck.db", isolation_level=None)
    at = "2026-01-01T00:00:00.000Z"
    history = f'[["placed", "{at}"], ["confirmed", "{at}"]]'
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO orders (id, customer_id, status, amount_cents, placed_event_id, history,"
        " created_at, updated_at) VALUES (?, 'big', 'confirmed', 1999, ?, ?, ?, ?)",
        ((_order_id(n), _order_id(n), history, at, at) for n in range(ORDERS)),
    )
    conn.execute(
        "INSERT INTO orders (id, customer_id, status, amount_cents, placed_event_id, history,"
        " created_at, updated_at) VALUES (?, 'big', 'placed', 1999, ?, ?, ?, ?)",
        (HEAVY, HEAVY, f'[["placed", "{at}"]]', at, at),
    )
    conn.executemany(
        "INSERT INTO journey VALUES (?, ?, 'OrderPlaced', 'order-events', 0, ?, ?, 'order', NULL)",
        ((f"hop-{n}", HEAVY, n, n) for n in range(HEAVY_HOPS)),
    )
    conn.execute("COMMIT")
    conn.close()
    store = open_store(default_store_url(directory))
    assert isinstance(store, SQLiteStore)
    try:
        yield store
    finally:
        store.close()


def _app(store: SQLiteStore) -> OrderDeckApp:
    runtime = FakeRuntime()
    runtime.store = store  # type: ignore[assignment]
    runtime.cached_counts = store.status_counts()  # status() must not read on the loop
    return OrderDeckApp(runtime, poll_interval=3600, clock=lambda: 1000.0)


def _reading(app: OrderDeckApp) -> bool:
    return any(w.group.startswith("store-read-") and not w.is_finished for w in app.workers)


def _busy(store: SQLiteStore) -> int:
    """A long read inside SQLite (the GIL is released meanwhile), on the store's thread."""
    with store._read() as conn:
        row = conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
            " SELECT count(*) FROM n",
            (BUSY_ROWS,),
        ).fetchone()
    return int(row[0])


async def test_keys_are_answered_while_the_orders_read_is_under_way(
    big_store: SQLiteStore,
) -> None:
    app = _app(big_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        busy = asyncio.ensure_future(big_store.run(_busy, big_store))
        await pilot.press("6")  # Orders: its list and the newest (heavy) order's journey
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        assert _reading(app), "the Orders read should still be under way"
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GroupsScreen), "Groups", 10)
        # The keys were answered while the store's thread was still busy.
        assert not busy.done(), "the store finished first: the test proves nothing"
        assert _reading(app)
        await pilot.press("6")
        orders = app.screen
        assert isinstance(orders, OrdersScreen)
        journey = orders.query_one(JourneyView)
        await until(
            pilot,
            lambda: journey.order is not None and journey.order.id == HEAVY,
            "the heavy order's journey",
            30,
        )
        assert journey.order is not None
        assert len(journey.order.journey) == HEAVY_HOPS
        assert orders.query_one(RowList).row_count == 100
        assert await busy == BUSY_ROWS


async def test_an_answer_overtaken_by_a_newer_request_is_dropped(big_store: SQLiteStore) -> None:
    app = _app(big_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        busy = asyncio.ensure_future(big_store.run(_busy, big_store))
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        assert _reading(app)
        await pilot.press("s")  # confirmed only: the unfiltered answer must not show
        assert screen.status_filter == "confirmed"
        assert not busy.done(), "the store finished first: the test proves nothing"
        await until(pilot, lambda: screen.lists_shown >= 1, "the confirmed list", 30)
        await reads_settled(pilot, 30)
        table = screen.query_one(RowList)
        assert screen.shown_filter == "confirmed"
        assert table.row_count == 100
        assert HEAVY not in table
        statuses = {str(table.row_at(i)[2]) for i in range(table.row_count)}
        assert statuses == {"● confirmed"}, statuses
        assert screen.lists_shown == 1, "the overtaken unfiltered list was shown"
        assert await busy == BUSY_ROWS


def test_the_heavy_store_is_on_disk(big_store: SQLiteStore) -> None:
    assert Path(big_store.path).stat().st_size > 1_000_000
    assert big_store.status_counts() == {"confirmed": ORDERS, "placed": 1}
