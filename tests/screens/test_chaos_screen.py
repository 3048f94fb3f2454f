"""The Chaos screen (key 8): every action asks first, then acts through the runtime, and the
timeline shows the recovery — over the fake runtime, and once for real (a crashed service on
the real pipeline, recovered on the timeline)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets import DataTable, Static

from orderdeck.app import OrderDeckApp
from orderdeck.events import TopicNames
from orderdeck.screens.chaos import ChaosScreen, ConfirmScreen
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import running_app, until, until_ready
from tests.screens.test_snapshots import deck


def actions(app: OrderDeckApp) -> list[str]:
    table = app.screen.query_one("#chaos-actions", DataTable)
    return [str(key.value) for key in table.rows]


def timeline_texts(app: OrderDeckApp) -> list[str]:
    table: DataTable[Any] = app.screen.query_one("#chaos-timeline", DataTable)
    return [str(table.get_row_at(i)[3]) for i in range(table.row_count)]


async def choose(pilot: Any, key: str) -> None:
    """Put the action table's cursor on the action ``key``."""
    app = pilot.app
    table = app.screen.query_one("#chaos-actions", DataTable)
    table.focus()
    table.move_cursor(row=actions(app).index(key))
    await pilot.pause()


async def test_an_action_acts_only_once_confirmed() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("8")
        screen = app.screen
        assert isinstance(screen, ChaosScreen)
        await until(pilot, lambda: "start_broker:2" in actions(app), "the brokers read")
        # A running broker can be stopped or killed, the stopped one only started.
        assert [a for a in actions(app) if "broker" in a] == [
            "stop_broker:1",
            "kill_broker:1",
            "start_broker:2",
            "stop_broker:3",
            "kill_broker:3",
        ]

        await choose(pilot, "kill_broker:1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm modal")
        question = str(app.screen.query_one("#confirm-question", Static).render())
        assert "kill -9 broker 1 (pid 4101)" in question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, "the modal to close")
        assert runtime.faults.asked == []  # cancelled: nothing happened

        await pilot.press("enter", "y")
        await until(pilot, lambda: screen.done == ["kill_broker:1"], "the kill")
        assert runtime.faults.asked == [("kill_broker", 1)]

        # + raises the latency the next slow-down adds, and the action says so.
        await choose(pilot, "slow:payment")
        await pilot.press("plus", "plus")
        await pilot.press("enter", "y")
        await until(pilot, lambda: "unslow:payment" in actions(app), "payment slowed")
        assert runtime.faults.asked[-1] == ("slow", ("payment", 200))


async def test_the_timeline_shows_faults_their_steps_and_recovery_time() -> None:
    app = deck()
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("8")
        await pilot.pause()
        lines = timeline_texts(app)
        assert lines[0] == "kill -9 broker 2"
        assert "leader of 1 partition moved off broker 2" in lines
        assert "recovered in 13.6 s" in lines
        recovery = str(app.screen.query_one("#chaos-recovery", Static).render())
        assert "#1 kill -9 broker 2 13.6 s" in recovery
        assert "#2 slow inventory by 100 ms/record recovering…" in recovery


async def test_a_service_crashed_from_the_screen_recovers_on_the_timeline(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        await pilot.press("8")
        await until(pilot, lambda: "crash:inventory" in actions(app), "the action list")
        await choose(pilot, "crash:inventory")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm modal")
        await pilot.press("y")
        await until(
            pilot,
            lambda: any(t.startswith("recovered in") for t in timeline_texts(app)),
            "the crash's recovery on the timeline",
            60,
        )
        lines = timeline_texts(app)
        assert lines[0] == "crash inventory"
        assert "inventory running again" in lines
        (inventory,) = [s for s in runtime.supervisor.statuses() if s.name == "inventory"]
        assert inventory.restarts >= 1


async def test_the_cursor_follows_its_target_when_the_actions_change() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("8")
        await until(pilot, lambda: "kill_broker:3" in actions(app), "the brokers read")
        await choose(pilot, "kill_broker:3")
        # Broker 3 is killed: its two rows become one "start broker 3", under the cursor.
        runtime.faults.broker_refs[2] = replace(runtime.faults.broker_refs[2], running=False)
        screen = app.screen
        assert isinstance(screen, ChaosScreen)
        screen.refresh_brokers()
        await until(pilot, lambda: "start_broker:3" in actions(app), "the second read")
        table = app.screen.query_one("#chaos-actions", DataTable)
        assert actions(app)[table.cursor_row] == "start_broker:3"
        # Slowing a service turns its row into "restore": the cursor stays on it, not on
        # the crash row of the same service above it.
        await choose(pilot, "slow:payment")
        await pilot.press("enter", "y")
        await until(pilot, lambda: "unslow:payment" in actions(app), "payment slowed")
        assert actions(app)[table.cursor_row] == "unslow:payment"


async def test_a_second_action_waits_for_the_first_to_finish() -> None:
    runtime = FakeRuntime()
    release = asyncio.Event()

    async def slow_start(broker_id: int) -> None:
        runtime.faults.asked.append(("start_broker", broker_id))
        await release.wait()

    runtime.faults.start_broker = slow_start  # type: ignore[method-assign]
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("8")
        await until(pilot, lambda: "start_broker:2" in actions(app), "the brokers read")
        screen = app.screen
        assert isinstance(screen, ChaosScreen)
        await choose(pilot, "start_broker:2")
        await pilot.press("enter", "y")
        await until(pilot, lambda: screen.busy is not None, "the start under way")
        await choose(pilot, "crash:order")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen  # no modal: the start is still under way
        assert runtime.faults.asked == [("start_broker", 2)]
        release.set()
        await until(pilot, lambda: screen.busy is None, "the start done")
        await pilot.press("enter", "y")
        await until(pilot, lambda: ("crash", "order") in runtime.faults.asked, "the crash")


async def test_a_burst_of_moves_and_enter_asks_about_the_row_moved_to() -> None:
    """``j j enter`` arriving at once (a paste, a script, a fast typist over ssh): enter is a
    priority binding, handled before the moves still queued for the table — it must still ask
    about the row the moves lead to, never the one the cursor left."""
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("8")
        await until(pilot, lambda: "start_broker:2" in actions(app), "the brokers read")
        await choose(pilot, "stop_broker:1")
        screen = app.screen
        assert isinstance(screen, ChaosScreen)
        for key, character in (("j", "j"), ("j", "j"), ("enter", None)):
            app.post_message(events.Key(key, character))  # as the driver posts a burst
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == screen.actions[2].question  # start_broker:2, not stop 1
        assert screen.actions[2].key == "start_broker:2"
        await pilot.press("n")
