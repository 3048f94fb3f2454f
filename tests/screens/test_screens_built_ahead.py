"""The hidden screens are composed once start-up is over, so a screen's first key is a
switch; Topics is composed too, but its tail starts only when it is first shown."""

from __future__ import annotations

from orderdeck.app import SCREENS, OrderDeckApp
from orderdeck.screens.orders import OrdersScreen
from orderdeck.screens.prebuild import is_built
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.row_list import RowList
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


async def test_every_screen_is_built_before_its_key_and_topics_tails_only_once_shown() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        modes = [mode for mode, _, _ in SCREENS]
        await until(pilot, lambda: all(is_built(app, m) for m in modes), "every screen built")
        assert app.current_mode == "pipeline"
        assert runtime.tails == []  # Topics is composed, but nobody watches it yet
        orders = app._screen_stacks["orders"][0]
        assert isinstance(orders, OrdersScreen)
        assert orders.query_one("#orders-table", RowList).is_mounted

        await pilot.press("6")
        assert app.screen is orders  # the very screen built ahead, not a new one
        await pilot.press("3")
        assert isinstance(app.screen, TopicsScreen)
        await until(pilot, lambda: len(runtime.tails) == 1, "the Topics tail opened")
        await until(pilot, lambda: app.screen.tail_ready, "the tail ready")  # type: ignore[attr-defined]


async def test_the_heap_is_settled_once_the_runtime_runs_and_every_screen_is_built() -> None:
    # launch gives process_tuning.settle_heap (gc.freeze); a test must not freeze its process.
    seen: list[tuple[bool, bool]] = []
    modes = [mode for mode, _, _ in SCREENS]
    app: OrderDeckApp

    def settle() -> None:
        seen.append((app.ready, all(is_built(app, m) for m in modes)))

    app = deck(FakeRuntime(), settle_heap=settle)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await until(pilot, lambda: bool(seen), "the heap settled")
        await pilot.press("6", "1")  # later keys and ticks do not settle it again
        await pilot.pause(0.5)
    assert seen == [(True, True)]
