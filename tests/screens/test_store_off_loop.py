"""The control center keeps answering keys while the store is slow to answer.

The store here is a real SQLite file, made slow by its size: the newest order carries a
journey of many thousand hops, so reading it takes a good part of a second. The screens must
read it on the store's thread (``DeckScreen.read_store``) and show it when it arrives, with
keys handled meanwhile; an answer that a newer request overtook is never shown.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from orderdeck.app import OrderDeckApp
from orderdeck.screens.groups import GroupsScreen
from orderdeck.screens.orders import OrdersScreen
from orderdeck.store import open_store
from orderdeck.store.sqlite import SQLiteStore
from orderdeck.store.url import default_store_url
from orderdeck.widgets.journey import JourneyView
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import reads_settled, until, until_ready

ORDERS = 20_000
HEAVY_HOPS = 300_000
HEAVY = "ffffffff-0000-7000-8000-00000000heavy"
#: The slow read must take at least this long for the test to say anything.
SLOW_ENOUGH_S = 0.4


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
    return OrderDeckApp(runtime, poll_interval=3600, clock=lambda: 1000.0)


def _reading(app: OrderDeckApp) -> bool:
    return any(w.group.startswith("store-read-") and not w.is_finished for w in app.workers)


def _slow_read_s(store: SQLiteStore) -> float:
    began = time.perf_counter()
    assert store.get_order(HEAVY) is not None
    return time.perf_counter() - began


async def test_keys_are_answered_while_the_orders_read_is_under_way(
    big_store: SQLiteStore,
) -> None:
    slow = _slow_read_s(big_store)
    assert slow >= SLOW_ENOUGH_S, f"the heavy read took {slow:.2f} s: not slow enough to test"
    app = _app(big_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")  # Orders: its list and the newest (heavy) order's journey
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        assert _reading(app), "the Orders read should still be under way"
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, GroupsScreen), "Groups", 10)
        # The key was answered before the store did: the read is still running.
        assert _reading(app), f"Groups came only after the {slow:.2f} s read finished"
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
        assert orders.query_one(DataTable).row_count == 100


async def test_an_answer_overtaken_by_a_newer_request_is_dropped(big_store: SQLiteStore) -> None:
    app = _app(big_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 5)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        assert _reading(app)
        await pilot.press("s")  # confirmed only: the slow unfiltered answer must not show
        assert screen.status_filter == "confirmed"
        await until(pilot, lambda: screen.lists_shown >= 1, "the confirmed list", 30)
        await reads_settled(pilot, 30)
        table = screen.query_one(DataTable)
        assert screen.shown_filter == "confirmed"
        assert table.row_count == 100
        assert HEAVY not in table.rows
        statuses = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert statuses == {"● confirmed"}, statuses
        assert screen.lists_shown == 1, "the overtaken unfiltered list was shown"


def test_the_heavy_store_is_on_disk(big_store: SQLiteStore) -> None:
    assert Path(big_store.path).stat().st_size > 1_000_000
    assert big_store.status_counts() == {"confirmed": ORDERS, "placed": 1}
