"""Keys that never get trapped, read as a session over the fake runtime.

Each test drives the app with Pilot the way a person at the keyboard would and checks what
the screen then offers: where the focus is, what the footer lists, what ``?`` shows.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from textual import events
from textual.widgets import DataTable, Input

from orderdeck.app import OrderDeckApp
from orderdeck.kafka.tail import TailRecord
from orderdeck.screens.help import HelpScreen
from orderdeck.screens.orders import OrdersScreen
from orderdeck.screens.services import ServicesScreen
from orderdeck.screens.submit import SubmitScreen
from orderdeck.screens.topics import TopicsScreen
from orderdeck.widgets.formatting import short_id
from orderdeck.widgets.journey import JourneyView
from orderdeck.widgets.key_bar import KeyBar
from orderdeck.widgets.record_view import RecordView, merge_in_time
from orderdeck.widgets.row_list import RowList
from tests.screens.fake_runtime import FakeRuntime, _record, order_id
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


def footer(app: OrderDeckApp) -> dict[str, str]:
    """What the key bar shows: keys → description."""
    return {entry.keys: entry.description for entry in app.screen.query_one(KeyBar).entries}


async def test_f_keys_switch_screens_from_a_text_field_and_the_footer_says_so() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "the Submit screen")
        assert not isinstance(app.focused, Input)  # arriving never lands in a field
        app.screen.query_one("#customer", Input).focus()
        await pilot.pause()
        keys = footer(app)
        assert keys.get("esc") == "Leave field"
        assert keys.get("F1…F8") == "Screens"
        assert "1…8" not in keys
        assert "q" not in keys
        await pilot.press("3")
        assert app.screen.query_one("#customer", Input).value.endswith("3")
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "Submit again")
        # Back on Submit the focus is on the results, so the digits switch screens again.
        assert isinstance(app.focused, DataTable)
        assert footer(app).get("1…8") == "Screens"


async def test_escape_leaves_a_field_and_digits_work_again() -> None:
    app = deck()
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        assert isinstance(app.focused, RecordView)
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "groups", "the Groups screen")


async def test_question_mark_lists_the_screens_keys_and_escape_closes_it() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        sections = dict(help_screen.sections)
        topics = dict(sections["Topics screen"])
        assert {"p", "e", "l", "/", "P", "f", "t", "c"} <= set(topics)
        assert any("j" in keys.split() for keys, _ in sections["In the records"])
        assert any("F3" in keys.upper() for keys, _ in sections["Everywhere"])
        assert dict(sections["Everywhere"])["^p"] == "Commands"  # as the key bar names it
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "help to close")


async def test_topics_footer_lists_follow_and_topics_and_pause_becomes_resume() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        keys = footer(app)
        assert keys["f"] == "Follow"
        assert keys["t"] == "Topics"
        assert keys["p"] == "Pause"
        await pilot.press("p")
        await until(pilot, lambda: footer(app).get("p") == "Resume", "p to read Resume")
        assert app.screen.query_one("#tail-state").render().plain.count("paused") == 1
        await pilot.press("p")
        await until(pilot, lambda: footer(app).get("p") == "Pause", "p to read Pause again")


async def test_services_pause_label_follows_the_selected_service() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, ServicesScreen), "Services")
        await pilot.press("j", "p")  # j moves down the table, as k9s users expect
        runtime = app.runtime
        assert isinstance(runtime, FakeRuntime)
        await until(
            pilot, lambda: runtime.supervisor.statuses()[1].state == "paused", "payment paused"
        )
        await until(pilot, lambda: footer(app).get("p") == "Resume", "p to read Resume")
        await pilot.press("k")
        await until(pilot, lambda: footer(app).get("p") == "Pause", "order's p to read Pause")


async def test_j_k_g_and_shift_g_move_in_the_orders_table() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await until(pilot, lambda: app.polls >= 1, "the first poll")
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders")
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        table = screen.query_one(RowList)
        table.focus()
        await until(pilot, lambda: table.row_count == 12, "the twelve orders")
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == 11
        assert screen.selected_id == order_id(1)
        await pilot.press("g")
        assert table.cursor_row == 0
        # And ? lists them under the table's heading.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        in_table = dict(help_screen.sections)["In the table"]
        keys = {key for shown, _ in in_table for key in shown.split()}
        assert {"j", "k", "g", "G", "pgup", "pgdn"} <= keys, in_table


async def test_orders_find_by_id_tail_and_a_new_filter_starts_at_its_newest() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await until(pilot, lambda: app.polls >= 1, "the first poll")
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders")
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        await pilot.press("slash")
        await pilot.press(*"000000000007", "enter")
        await until(pilot, lambda: screen.selected_id == order_id(7), "order 7 found")
        # Cycling to "confirmed" shows the newest confirmed order, whatever was selected.
        screen.query_one(RowList).focus()
        await pilot.press("s")
        assert screen.status_filter == "confirmed"
        assert screen.selected_id == order_id(11)
        assert screen.query_one(RowList).cursor_row == 0


async def test_a_filter_listing_the_rows_on_display_still_starts_at_the_newest() -> None:
    app = deck()
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        await pilot.press("6")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), "Orders")
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        table = screen.query_one(RowList)
        table.focus()
        await until(pilot, lambda: table.row_count == 12, "the twelve orders")
        await pilot.press("j", "j", "j")
        assert screen.selected_id == table.keys[3]
        shown = screen.lists_shown
        await pilot.press("a")  # "all" again: the very rows on display
        await until(pilot, lambda: screen.lists_shown > shown, "the list read again")
        assert screen.selected_id == table.keys[0]
        assert table.cursor_row == 0
        journey = screen.query_one(JourneyView)
        await until(
            pilot,
            lambda: journey.order is not None and journey.order.id == table.keys[0],
            "the newest order's journey",
        )


async def test_copy_writes_the_selected_record_json_into_the_data_dir(tmp_path: Path) -> None:
    app = deck()
    app.data_dir = tmp_path
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "Topics")
        view = app.screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the 30 records")
        await pilot.press("c")
        copied = tmp_path / "records" / "order-events-p0-130.json"
        await until(pilot, copied.exists, "the record file")
        assert json.loads(copied.read_text())["orderId"] == order_id(30)


async def test_partition_filter_shows_one_partition_then_all_again() -> None:
    app = deck()
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "Topics")
        screen = app.screen
        assert isinstance(screen, TopicsScreen)
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.shown == 30, "the 30 records")
        await pilot.press("P")
        assert screen.partition == 0
        assert view.shown == 10
        assert {r.partition for r in view.records()} == {0}
        assert "order-events" in screen.query_one("#tail-state").render().plain
        await pilot.press("P", "P", "P")
        assert screen.partition is None
        assert view.shown == 30


async def test_screenshot_goes_to_the_data_dir_and_says_where(tmp_path: Path) -> None:
    app = deck()
    app.data_dir = tmp_path
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until_ready(pilot)
        app.deliver_screenshot()
        shots = list((tmp_path / "screenshots").glob("*.svg"))
        assert len(shots) == 1
        await until(
            pilot,
            lambda: any(shots[0].name in str(t.render()) for t in app.screen.query("Toast")),
            "a notification naming the file",
        )


def test_records_from_several_partitions_are_merged_by_time() -> None:
    ring: deque[TailRecord] = deque(maxlen=5)
    # As a tail from the earliest offsets delivers them: partition 0's block, then 1's.
    block_0 = [r for r in (_record("order-events", n) for n in range(1, 10)) if r.partition == 0]
    block_1 = [r for r in (_record("order-events", n) for n in range(1, 10)) if r.partition == 1]
    for record in block_0 + block_1:
        merge_in_time(ring, record)
    times = [r.timestamp_ms for r in ring]
    assert times == sorted(times)
    # A full ring keeps the newest: of 1, 3, 4, 6, 7, 9 (partitions 0 and 1) the last five.
    assert [r.offset - 100 for r in ring] == [3, 4, 6, 7, 9]


def test_short_ids_keep_the_distinguishing_tail() -> None:
    assert short_id("01a237b6-b42a-7b08-a77a-faa7327e0447") == "…327e0447"
    assert short_id("01a237b6-b416-71a0-98dd-f93b5c0fecc4", 13) == "…f93b5c0fecc4"
    assert short_id("short") == "short"
    assert short_id(None) == "-"


async def test_ctrl_s_typed_right_after_a_name_sends_the_whole_name() -> None:
    """A burst (a paste, a script) of characters then ``ctrl+s``: the priority binding must
    send the field as the characters before it left it, not as it was when ``ctrl+s`` came."""
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "Submit")
        screen = app.screen
        field = screen.query_one("#customer", Input)
        field.value = ""
        field.focus()
        await pilot.pause()
        for character in "zed42":
            app.post_message(events.Key(character, character))  # as the driver posts a burst
        app.post_message(events.Key("ctrl+s", None))
        await until(pilot, lambda: bool(runtime.submitted), "the order sent")
        assert [r.customerId for r in runtime.submitted] == ["zed42"]
