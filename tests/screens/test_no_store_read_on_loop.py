"""No screen reads the store on the event loop's thread, whatever keys are pressed.

A read on the loop freezes every key and frame until the database answers: at a million
orders one slow statement is a visible stall. The store here is a real SQLite store behind a
thin wrapper that notes which thread each read ran on (the reads themselves are the real
ones); the keys visit every screen and work the Orders filters, journeys and stuck view,
then the test asserts that every read ran, and none ran on the loop's thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orderdeck.app import SCREENS, OrderDeckApp
from orderdeck.screens.orders import OrdersScreen
from orderdeck.store import OrderSummary, OrderView, Product, open_store
from orderdeck.store.sqlite import SQLiteStore
from orderdeck.store.url import default_store_url
from orderdeck.store.views import StuckOrder
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import reads_settled, until, until_ready

T = TypeVar("T")


class ThreadNotingStore:
    """A real store whose reads note the thread they ran on (``calls``: method, thread)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.calls: list[tuple[str, int]] = []

    def _note(self, method: str) -> None:
        self.calls.append((method, threading.get_ident()))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._store.run(fn, *args)

    def order_statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        self._note("order_statuses")
        return self._store.order_statuses(order_ids)

    def get_order(self, order_id: str) -> OrderView | None:
        self._note("get_order")
        return self._store.get_order(order_id)

    def list_orders(
        self, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[OrderSummary], str | None]:
        self._note("list_orders")
        return self._store.list_orders(status=status, limit=limit, cursor=cursor)

    def list_products(self) -> list[Product]:
        self._note("list_products")
        return self._store.list_products()

    def status_counts(self) -> dict[str, int]:
        self._note("status_counts")
        return self._store.status_counts()

    def stuck_count(self, older_than_s: float = 30.0) -> int:
        self._note("stuck_count")
        return self._store.stuck_count(older_than_s)

    def stuck_orders(self, older_than_s: float = 30.0, limit: int = 100) -> list[StuckOrder]:
        self._note("stuck_orders")
        return self._store.stuck_orders(older_than_s, limit)


@pytest.fixture
def noting_store(tmp_path: Path) -> Iterator[ThreadNotingStore]:
    """A real SQLite store (its catalog seeded) with a few orders, behind the wrapper."""
    open_store(default_store_url(tmp_path)).close()
    at = "2026-01-01T00:00:00.000Z"
    conn = sqlite3.connect(tmp_path / "orderdeck.db", isolation_level=None)
    conn.executemany(
        "INSERT INTO orders (id, customer_id, status, amount_cents, placed_event_id, history,"
        " created_at, updated_at) VALUES (?, 'c', ?, 1999, ?, ?, ?, ?)",
        (
            (oid, status, oid, f'[["placed", "{at}"]]', at, at)
            for oid, status in (
                (f"{n:08d}-0000-7000-8000-{n:012d}", status)
                for n, status in enumerate(("confirmed", "placed", "payment_declined", "placed"))
            )
        ),
    )
    conn.close()
    store = open_store(default_store_url(tmp_path))
    assert isinstance(store, SQLiteStore)
    try:
        yield ThreadNotingStore(store)
    finally:
        store.close()


async def test_switching_screens_and_working_orders_never_reads_on_the_loop(
    noting_store: ThreadNotingStore,
) -> None:
    runtime = FakeRuntime()
    runtime.store = noting_store  # type: ignore[assignment]
    runtime.cached_counts = {"confirmed": 2}  # the real runtime's status() is cached too
    app = OrderDeckApp(runtime, poll_interval=0.2, clock=lambda: 1000.0)
    loop_thread = threading.get_ident()  # run_test drives the app on this thread's loop
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        for _, key, _ in (*SCREENS, *SCREENS):
            await pilot.press(key)
            await pilot.pause(0.05)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders", 10)
        orders = app.screen
        assert isinstance(orders, OrdersScreen)
        await until(pilot, lambda: orders.lists_shown >= 1, "the order list", 10)
        await pilot.press("s", "s", "a", "j", "j", "k", "u", "j", "u", "slash")
        await pilot.press(*"00000001", "enter", "escape", "1", "6")
        await until(
            pilot, lambda: orders.selected_id is not None, "an order selected after find", 10
        )
        await until(pilot, lambda: app.polls >= 2, "two group polls (full refreshes)", 10)
        await reads_settled(pilot, 10)
    methods = {method for method, _ in noting_store.calls}
    # The keys above made the screens read their lists, journeys, the stuck view and counts.
    assert {"list_orders", "get_order", "stuck_orders", "stuck_count"} <= methods, methods
    on_loop = sorted({method for method, thread in noting_store.calls if thread == loop_thread})
    assert not on_loop, f"store reads on the event loop's thread: {on_loop}"
