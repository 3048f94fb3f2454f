"""Pictures of every screen at 80x24, 120x36 and 200x50, from a deterministic fake runtime.

80x24 is the default size of most terminals and gets the compact (``-narrow``) layouts;
120x36 and 200x50 the wide ones. The fake serves fixed orders, services, group snapshots
and tail records with a fixed clock, and the app polls once (the history before it is
primed), so each picture is the same on every run. Update them with
``pytest tests/screens --snapshot-update`` after an intended change and look at the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from orderdeck.app import OrderDeckApp
from orderdeck.runtime import StartupStep
from orderdeck.screens.chaos import ChaosScreen
from orderdeck.screens.cluster import ClusterScreen
from orderdeck.screens.dead_letters import DeadLettersScreen
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.group_panel import GroupPanel
from orderdeck.widgets.record_view import RecordView
from orderdeck.widgets.runtime_link import RuntimeHooks
from tests.screens.fake_runtime import FakeRuntime, order_id
from tests.screens.helpers import reads_settled, until, until_ready

SIZES = {"80x24": (80, 24), "120x36": (120, 36), "200x50": (200, 50)}
PRIMED_POLLS = 60
sizes = pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))

SnapCompare = Callable[..., bool]


def deck(
    runtime: FakeRuntime | None = None,
    hooks: RuntimeHooks | None = None,
    settle_heap: Callable[[], None] | None = None,
) -> OrderDeckApp:
    """The app over a fake runtime whose group history is already a minute long."""
    runtime = runtime or FakeRuntime()
    app = OrderDeckApp(
        runtime, hooks=hooks, poll_interval=3600, clock=lambda: 1000.0, settle_heap=settle_heap
    )
    for step in range(PRIMED_POLLS):
        app.live.update(runtime.snapshots_for(step))
    runtime.polls = PRIMED_POLLS - 1
    return app


def on_screen(key: str, extra: Callable[[Pilot[Any]], Awaitable[None]] | None = None) -> Any:
    """A ``run_before`` that waits for start-up, switches screen and lets it settle."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await until_ready(pilot)
        app = pilot.app
        assert isinstance(app, OrderDeckApp)
        await until(pilot, lambda: app.polls >= 1, "the first group poll")
        if key:
            await pilot.press(key)
        await pilot.pause()
        if extra is not None:
            await extra(pilot)
        for field in app.screen.query(Input):
            field.cursor_blink = False
        # Store reads run in workers; their answers arrive as messages.
        await reads_settled(pilot)

    return run_before


@sizes
def test_pipeline_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(deck(), terminal_size=size, run_before=on_screen(""))


@sizes
def test_submit_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def submit_two(pilot: Pilot[Any]) -> None:
        await pilot.press("ctrl+s")
        app = pilot.app
        screen = app.screen
        await until(pilot, lambda: len(getattr(screen, "results", ())) == 1, "the first result")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(getattr(screen, "results", ())) == 2, "the second result")
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("2", submit_two))


@sizes
def test_topics_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def records_arrived(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, TopicsScreen)
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the fake tail's 30 records")
        await pilot.press("up", "up", "up")

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("3", records_arrived))


@sizes
def test_groups_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def drawn(pilot: Pilot[Any]) -> None:
        await until(
            pilot,
            lambda: all(p.snapshot is not None for p in pilot.app.screen.query(GroupPanel)),
            "every group panel to show a snapshot",
        )

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("4", drawn))


@sizes
def test_services_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def pause_payment(pilot: Pilot[Any]) -> None:
        await pilot.press("down", "p")
        app = pilot.app
        assert isinstance(app, OrderDeckApp)
        runtime = app.runtime
        assert isinstance(runtime, FakeRuntime)
        await until(
            pilot,
            lambda: runtime.supervisor.statuses()[1].state == "paused",
            "payment to be paused",
        )
        await pilot.press("down", "plus")
        await until(
            pilot,
            lambda: runtime.supervisor.statuses()[2].instances == 2,
            "inventory to scale to 2",
        )
        await pilot.pause(0.3)  # one tick redraws the table from the new statuses
        for toast in pilot.app.query("Toast"):
            toast.remove()
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("5", pause_payment))


@sizes
def test_orders_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def pick_cancelled(pilot: Pilot[Any]) -> None:
        await pilot.press("down", "down", "down", "down", "down", "down", "down")
        await pilot.pause(0.3)

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("6", pick_cancelled))


@sizes
def test_cluster_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def second_read(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, ClusterScreen)
        await until(pilot, lambda: screen.view is not None, "the first cluster read")
        screen.refresh_cluster()  # broker 2 is gone by the second read: leaders moved
        await until(
            pilot,
            lambda: screen.view is not None and screen.view.taken_at > 1000.0,
            "the second cluster read",
        )

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("7", second_read))


@sizes
def test_dead_letters_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def loaded_and_one_selected(pilot: Pilot[Any]) -> None:
        await pilot.press("d")
        screen = pilot.app.screen
        await until(pilot, lambda: isinstance(screen, DeadLettersScreen), "Dead letters")
        screen = pilot.app.screen
        assert isinstance(screen, DeadLettersScreen)
        await until(pilot, lambda: screen.loaded, "the dead letters to load")
        await pilot.press("space")
        await pilot.pause()

    assert snap_compare(
        deck(), terminal_size=size, run_before=on_screen("3", loaded_and_one_selected)
    )


class SlowStart(FakeRuntime):
    """A runtime stuck half-way through start-up (Kafka up, topics being created)."""

    def __init__(self, hooks: RuntimeHooks) -> None:
        super().__init__()
        self.hooks = hooks
        self.release = asyncio.Event()

    async def start(self) -> None:
        self.hooks.on_progress(StartupStep("kafka", "done", "Kafka at 127.0.0.1:9092 answers"))
        self.hooks.on_progress(StartupStep("topics", "running", "creating topics"))
        await self.release.wait()


@sizes
def test_startup_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    hooks = RuntimeHooks()
    runtime = SlowStart(hooks)
    app = deck(runtime, hooks)

    async def started_half(pilot: Pilot[Any]) -> None:
        await until(
            pilot,
            lambda: "topics" in getattr(pilot.app.screen, "steps", {}),
            "the topics step to show",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=started_half)


@sizes
def test_help_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def press_help(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen", "help")
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("3", press_help))


def test_topics_filter_focused(snap_compare: SnapCompare) -> None:
    """In the filter box the footer offers esc and the F-keys, not the letters it types."""

    async def into_filter(pilot: Pilot[Any]) -> None:
        await pilot.press("slash", "2", "5")
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=(80, 24), run_before=on_screen("3", into_filter))


@pytest.mark.parametrize("size", [SIZES["80x24"], SIZES["120x36"]], ids=["80x24", "120x36"])
def test_chaos_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def brokers_read(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, ChaosScreen)
        await until(pilot, lambda: screen.brokers_read, "the brokers read")
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=size, run_before=on_screen("8", brokers_read))


def test_topics_seek_box_names_a_mistake(snap_compare: SnapCompare) -> None:
    """The seek box (s on Topics) at 80x24, with what is wrong with the text typed."""

    async def seek_wrong(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the fake tail's records")
        await pilot.press("s", *"-10", "enter")
        await pilot.pause()

    assert snap_compare(deck(), terminal_size=(80, 24), run_before=on_screen("3", seek_wrong))


def test_topics_fenced_record(snap_compare: SnapCompare) -> None:
    """A record the API fenced after a 503: ✗ fenced in its row and in the record panel."""
    runtime = FakeRuntime()
    runtime.fenced.add("0a0b0c0d-0000-4000-8000-000000000030", order_id(30))

    async def records_arrived(pilot: Pilot[Any]) -> None:
        view = pilot.app.screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the fake tail's records")
        await pilot.pause()

    assert snap_compare(
        deck(runtime), terminal_size=(120, 36), run_before=on_screen("3", records_arrived)
    )
