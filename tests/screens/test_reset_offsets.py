"""The Groups screen's offset-reset modal over the fake runtime: ``r`` opens it, it shows
the runtime's plan for the chosen mode and group, and ctrl+e hands that plan to the runtime."""

from __future__ import annotations

from textual.widgets import Select, Static

from orderdeck.screens.reset_offsets import ResetOffsetsScreen, target_for
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


def plan_shown(screen: ResetOffsetsScreen) -> str:
    return str(screen.query_one("#reset-plan", Static).render())


async def test_r_previews_the_plan_and_ctrl_e_applies_it() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "groups", "the Groups screen")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResetOffsetsScreen), "the modal")
        modal = app.screen
        assert isinstance(modal, ResetOffsetsScreen)
        first = runtime.names.pipeline()[0]
        await until(pilot, lambda: "NEW-OFFSET" in plan_shown(modal), "the earliest plan")
        assert runtime.previews[-1] == (first, target_for("earliest", ""))
        assert f"{first:<28}         0" in plan_shown(modal)
        assert runtime.resets == []  # a preview changes nothing

        payment = runtime.names.pipeline()[1]
        modal.query_one("#reset-group", Select).value = payment
        modal.query_one("#reset-mode", Select).value = "latest"
        await until(
            pilot,
            lambda: (
                bool(runtime.previews)
                and runtime.previews[-1][0] == payment
                and runtime.previews[-1][1].mode == "latest"
                and modal.plan is not None
                and modal.plan[0].group == payment
            ),
            "the latest plan of the payment group",
        )
        plan = list(modal.plan or ())
        await until(pilot, lambda: f"{plan[0].new:>10}" in plan_shown(modal), "the plan shown")
        assert all(row.current is not None and row.new >= row.current for row in plan)
        await pilot.press("ctrl+e")
        await until(pilot, lambda: bool(runtime.resets), "the reset to be applied")
        assert runtime.resets == [(payment, plan)]
        await until(pilot, lambda: not isinstance(app.screen, ResetOffsetsScreen), "it to close")


def test_targets_from_the_modal_fields() -> None:
    assert target_for("shift", "-5").value == -5
    assert target_for("duration", "10", now_ms=1_000_000).value == 1_000_000 - 600_000
