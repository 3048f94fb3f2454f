"""The Pipeline's stuck-orders line: counted off the loop from ``store.stuck_count``."""

from __future__ import annotations

from textual.widgets import Static

from orderdeck.events import FINAL_STATUSES
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


async def test_the_pipeline_shows_how_many_orders_are_stuck() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    expected = sum(1 for o in runtime.store.orders.values() if o.status not in FINAL_STATUSES)
    assert expected > 0
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        panel = app.screen.query_one("#status-counts", Static)

        def line() -> str:
            text = str(panel.render())
            return next((row for row in text.splitlines() if "stuck" in row), "")

        app.screen.tick(full=True)  # type: ignore[attr-defined]
        await until(pilot, lambda: line().split()[-1:] == [f"{expected:,}"], "the stuck count")
