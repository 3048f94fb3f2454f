"""Seek (``s``) on Topics and the hidden-screen backlog, driven with keys over the fake runtime.

The parsing is tested form by form in tests/kafka/test_seek_target.py and the seek itself on a
real topic in tests/kafka/test_tail_seek.py; here: the box says what is wrong and stays open,
a good target restarts the tail there, and the status line names the topic and the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from orderdeck.events import TopicNames
from orderdeck.kafka.seek_target import SeekOffset, SeekTime
from orderdeck.orders import OrderRequest
from orderdeck.screens.seek import SeekScreen
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.record_view import RecordView
from tests.screens.fake_runtime import FakeRuntime, _record
from tests.screens.helpers import running_app, until, until_ready
from tests.screens.test_snapshots import deck


async def on_topics(pilot: Pilot[Any]) -> TopicsScreen:
    await until_ready(pilot)
    await pilot.press("3")
    await until(pilot, lambda: isinstance(pilot.app.screen, TopicsScreen), "the Topics screen")
    screen = pilot.app.screen
    assert isinstance(screen, TopicsScreen)
    view = screen.query_one(RecordView)
    await until(pilot, lambda: screen.tail_ready and view.shown == 30, "the fake tail's records")
    return screen


def state(screen: TopicsScreen) -> str:
    return screen.query_one("#tail-state").render().plain  # type: ignore[attr-defined,no-any-return]


async def open_seek(pilot: Pilot[Any]) -> SeekScreen:
    await pilot.press("s")
    await until(pilot, lambda: isinstance(pilot.app.screen, SeekScreen), "the seek box")
    box = pilot.app.screen
    assert isinstance(box, SeekScreen)
    return box


async def test_a_mistake_is_named_in_the_box_which_stays_open_until_fixed() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await on_topics(pilot)
        box = await open_seek(pilot)
        assert box.partitions == (0, 1, 2)
        await pilot.press(*"-10", "enter")
        assert app.screen is box
        assert "-10 needs a unit" in box.error
        assert "-10 needs a unit" in str(box.query_one("#seek-error").render())
        await pilot.press("x")  # typing clears the message
        assert box.error == ""
        await pilot.press("enter")
        assert "unknown unit 'x'" in box.error
        await pilot.press(*["backspace"] * 4, *"7:5", "enter")
        assert "partition 7 does not exist in order-events (partitions 0, 1, 2)" in box.error
        await pilot.press(*["backspace"] * 3, *"12:30", "enter")
        assert "a time of day needs its seconds: 12:30:00" in box.error
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the box to close")
        assert len(runtime.tails) == 1  # nothing restarted
        assert runtime.tails[0].seeks == []


async def test_a_time_restarts_the_tail_there_and_the_status_line_says_where() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await on_topics(pilot)
        assert "order-events" in state(screen)
        assert "from latest" in state(screen)
        await open_seek(pilot)
        await pilot.press(*"-10m", "enter")
        await until(pilot, lambda: len(runtime.tails) == 2, "a new tail")
        await until(pilot, lambda: screen.tail_ready, "the new tail to be positioned")
        (target,) = runtime.tails[1].seeks
        assert isinstance(target, SeekTime)
        assert target.typed == "-10m"
        assert isinstance(screen.start_at, SeekTime)
        await until(pilot, lambda: "from -10m (" in state(screen), "the start in the status line")
        assert state(screen).startswith("order-events")
        await pilot.press("l")  # back to the latest: the seek is forgotten
        await until(pilot, lambda: "from latest" in state(screen), "latest again")
        assert screen.start_at is None


async def test_partition_colon_offset_shows_that_partition_from_there() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_topics(pilot)
        await open_seek(pilot)
        await pilot.press(*"1:120", "enter")
        await until(pilot, lambda: len(runtime.tails) == 2, "a new tail")
        assert runtime.tails[1].seeks == [SeekOffset(120, partition=1)]
        assert screen.partition == 1
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 10, "partition 1's records")
        assert {r.partition for r in view.records()} == {1}
        # At 80 columns the start is the short form.
        await until(pilot, lambda: "p1@120" in state(screen), "the start in the status line")


async def test_a_hidden_topics_screen_keeps_records_and_draws_them_when_shown_again() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await on_topics(pilot)
        view = screen.query_one(RecordView)
        await pilot.press("1")
        await until(pilot, lambda: not screen.is_current, "another screen")
        tail = runtime.tails[-1]
        tail.records.extend(_record(tail.topic, n) for n in range(31, 51))
        await until(pilot, lambda: len(screen._backlog) == 20, "the records to be kept")
        assert view.shown == 30  # not drawn while hidden
        assert view.received == 30
        await pilot.press("3")
        await until(pilot, lambda: view.shown == 50, "the kept records in the view")
        assert not screen._backlog
        assert view.follow
        assert view.selected is view.records()[-1]


async def test_on_a_real_topic_seeking_to_an_offset_shows_each_partition_from_there(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    async with running_app(kafka_bootstrap, topic_names, tmp_path) as (app, pilot, runtime):
        landed: list[tuple[int, int]] = []
        for n in range(12):
            placed = await runtime.submit_order(OrderRequest.single(f"seek-{n}", "sku-cable", 1))
            assert placed.delivery is not None
            landed.append((placed.delivery.partition, placed.delivery.offset))
        from_one = sorted(pair for pair in landed if pair[1] >= 1)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        screen = app.screen
        assert isinstance(screen, TopicsScreen)
        await until(pilot, lambda: screen.tail_ready, "the tail to be positioned")
        assert screen.tail_partitions == (0, 1, 2)
        view = screen.query_one(RecordView)
        assert view.shown == 0  # from the latest: the orders placed before are not shown
        await open_seek(pilot)
        await pilot.press("1", "enter")
        await until(pilot, lambda: view.shown == len(from_one), "every record from offset 1")
        records = view.records()
        assert sorted((r.partition, r.offset) for r in records) == from_one
        # Merged by time across partitions: TIME never goes backwards.
        assert [r.timestamp_ms for r in records] == sorted(r.timestamp_ms for r in records)
        assert "from offset 1" in state(screen)


async def test_a_time_is_kept_for_the_next_topic_and_an_offset_is_not() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await on_topics(pilot)
        await open_seek(pilot)
        await pilot.press(*"-10m", "enter")
        await until(pilot, lambda: len(runtime.tails) == 2, "the sought tail")
        (moment,) = runtime.tails[1].seeks
        await pilot.press("t", "down", "down", "enter")  # payment-events
        await until(pilot, lambda: len(runtime.tails) == 3, "the next topic's tail")
        assert screen.topic == runtime.names.payments
        assert runtime.tails[2].seeks == [moment]
        await until(pilot, lambda: "payment-events" in state(screen), "the topic's name")
        assert "from -10m (" in state(screen)
        await open_seek(pilot)
        await pilot.press(*"5", "enter")
        await until(pilot, lambda: len(runtime.tails) == 4, "the offset's tail")
        await pilot.press("t", "up", "up", "enter")  # back to order-events
        await until(pilot, lambda: len(runtime.tails) == 5, "order-events again")
        assert runtime.tails[4].seeks == []
        await until(pilot, lambda: "from latest" in state(screen), "latest again")
