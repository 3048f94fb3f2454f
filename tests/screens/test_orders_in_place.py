"""The Orders list follows the store: new orders and new statuses, the cursor kept.

The list (``RowList``) is set whole on each poll that changed something; it draws only the
lines on screen, so that costs little, but the cursor must stay on the order it was on. The
store is a real SQLite store that the test writes to as the services would; the list must
show what the store says, in its order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderdeck.app import OrderDeckApp
from orderdeck.screens.orders import OrdersScreen
from orderdeck.store import open_store
from orderdeck.store.sqlite import SQLiteStore
from orderdeck.store.url import default_store_url
from orderdeck.widgets.row_list import RowList
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready

AT = "2026-01-01T00:00:00.000Z"
LATER = "2026-01-01T00:00:05.000Z"


def _order_id(n: int) -> str:
    return f"{n:08d}-0000-7000-8000-{n:012d}"


def _insert(path: Path, numbers: range, status: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO orders (id, customer_id, status, amount_cents, placed_event_id, history,"
        " created_at, updated_at) VALUES (?, 'c', ?, 1999, ?, ?, ?, ?)",
        ((_order_id(n), status, _order_id(n), f'[["placed", "{AT}"]]', AT, AT) for n in numbers),
    )
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    open_store(default_store_url(tmp_path)).close()
    _insert(tmp_path / "orderdeck.db", range(10), "placed")
    opened = open_store(default_store_url(tmp_path))
    assert isinstance(opened, SQLiteStore)
    try:
        yield opened
    finally:
        opened.close()


def _statuses(table: RowList) -> dict[str, str]:
    return {key: str(table.row(key)[2]).removeprefix("● ") for key in table.keys}


async def test_new_orders_and_statuses_show_and_the_cursor_stays_on_its_order(
    store: SQLiteStore,
) -> None:
    runtime = FakeRuntime()
    runtime.store = store  # type: ignore[assignment]
    runtime.cached_counts = {"placed": 10}
    app = OrderDeckApp(runtime, poll_interval=0.2, clock=lambda: 1000.0)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        table = screen.query_one("#orders-table", RowList)
        await until(pilot, lambda: table.row_count == 10, "the ten orders", 10)
        table.focus()
        await pilot.press("j", "j")  # the cursor on the third newest order
        assert table.cursor_key == _order_id(7)
        await until(pilot, lambda: screen.selected_id == _order_id(7), "its journey asked for")

        # As the services would: two new orders arrive and one listed order is confirmed.
        _insert(store.path, range(10, 12), "placed")
        conn = sqlite3.connect(store.path, isolation_level=None)
        conn.execute(
            "UPDATE orders SET status = 'confirmed', updated_at = ? WHERE id = ?",
            (LATER, _order_id(4)),
        )
        conn.close()

        await until(pilot, lambda: table.row_count == 12, "the two new orders", 10)
        await until(
            pilot, lambda: _statuses(table)[_order_id(4)] == "confirmed", "the new status", 10
        )
        listed, _ = store.list_orders(limit=100)
        assert table.keys == [order.id for order in listed]
        assert table.keys[:2] == [_order_id(11), _order_id(10)]
        assert _statuses(table) == {order.id: order.status for order in listed}
        # Two rows arrived above it: the cursor moved down with its order.
        assert table.cursor_key == _order_id(7)
        assert table.cursor_row == 4
        assert screen.selected_id == _order_id(7)


async def test_a_customer_id_with_brackets_is_shown_as_typed(store: SQLiteStore) -> None:
    """The API accepts any printable customer id; the table must not read it as markup."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("UPDATE orders SET customer_id = '[/]a[bold]b' WHERE id = ?", (_order_id(9),))
    conn.close()
    runtime = FakeRuntime()
    runtime.store = store  # type: ignore[assignment]
    runtime.cached_counts = {"placed": 10}
    app = OrderDeckApp(runtime, poll_interval=0.2, clock=lambda: 1000.0)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        table = app.screen.query_one("#orders-table", RowList)
        await until(pilot, lambda: table.row_count == 10, "the ten orders", 10)
        assert str(table.row(_order_id(9))[1]) == "[/]a[bold]b"
        drawn = [table.render_line(y).text for y in range(table.size.height)]
        assert any("[/]a[bold]b" in line for line in drawn), drawn
