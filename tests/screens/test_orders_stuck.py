"""``u`` on Orders: the stuck orders with the hop each stopped after and its age, and back."""

from __future__ import annotations

from textual.app import App

from orderdeck.events import FINAL_STATUSES
from orderdeck.screens.orders import OrdersScreen, age
from orderdeck.widgets.row_list import RowList
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


def rows(table: RowList) -> list[list[str]]:
    return [[str(cell) for cell in table.row_at(i)] for i in range(table.row_count)]


def footer_label(app: App[object]) -> str:
    """What the footer shows beside ``u``."""
    active = app.active_bindings.get("u")
    return active.binding.description if active is not None and active.enabled else ""


async def test_u_lists_the_stuck_orders_with_hop_and_age_and_u_again_restores() -> None:
    runtime = FakeRuntime()
    stuck = runtime.store.stuck_orders(30.0, 100)
    assert stuck
    assert all(o.status not in FINAL_STATUSES for o in stuck)
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        table = screen.query_one("#orders-table", RowList)
        await until(pilot, lambda: table.row_count > 0, "the orders list")
        everything = rows(table)
        assert len(everything) > len(stuck)

        assert footer_label(app) == "Stuck"
        await pilot.press("u")
        await until(pilot, lambda: footer_label(app) == "All", "the toggle's label")
        await until(pilot, lambda: rows(table) and rows(table)[0][0] == stuck[0].id, "stuck rows")
        shown = rows(table)
        assert [r[0] for r in shown] == [o.id for o in stuck]
        first = stuck[0]
        assert first.lastEvent is not None
        assert shown[0][3] == first.lastEvent
        assert shown[0][4].strip() == age(first.stuckForS)
        assert "STOPPED AFTER" in [title for _, title, _ in table.columns]

        await pilot.press("u")
        await until(pilot, lambda: rows(table) == everything, "the whole list again")
        assert footer_label(app) == "Stuck"
        assert "STOPPED AFTER" not in [title for _, title, _ in table.columns]


def test_age_reads_short() -> None:
    assert [age(s) for s in (45.2, 185, 7260)] == ["45s", "3m05s", "2h01m"]
