"""The Dead letters screen over the fake runtime: open with ``d``, select, edit, redrive."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App
from textual.widgets import DataTable, Static, TextArea

from orderdeck.screens.dead_letters import ConfirmScreen, DeadLettersScreen, EditValueScreen
from orderdeck.screens.topics import TopicsScreen
from tests.screens.fake_runtime import FakeRuntime
from tests.screens.helpers import until, until_ready
from tests.screens.test_snapshots import deck


def footer_label(app: App[object], key: str) -> str:
    """What the footer shows beside ``key``."""
    active = app.active_bindings.get(key)
    return active.binding.description if active is not None and active.enabled else ""


async def test_a_poison_record_is_edited_to_json_and_redriven_once() -> None:
    runtime = FakeRuntime()
    app = deck(runtime)
    async with app.run_test(size=(120, 36)) as pilot:
        await until_ready(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, TopicsScreen), "the Topics screen")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "Dead letters")
        screen = app.screen
        assert isinstance(screen, DeadLettersScreen)
        await until(pilot, lambda: screen.loaded, "the dead letters to load")
        table = screen.query_one(DataTable)
        assert table.row_count == 3
        assert screen.topic is None  # the tail was on orders, not a DLQ: every DLQ is shown

        await pilot.press("down", "space")
        assert screen.selected == {"order-events.dlq:0:1"}
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditValueScreen), "the edit modal")
        modal = app.screen
        await pilot.press("ctrl+s")  # the poison value is still not JSON: refused, named
        error = str(modal.query_one("#edit-error", Static).render())
        assert "order-events.dlq:0:1: not JSON" in error
        modal.query_one(TextArea).load_text('{"fixed": true}')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, "the edit modal to close")
        assert screen.edits == {"order-events.dlq:0:1": b'{"fixed": true}'}

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: screen.message.startswith("redriven"), "the redrive")
        assert runtime.redrives == [("order-events.dlq", [(0, 1)], b'{"fixed": true}', False)]
        assert screen.message == "redriven 1"
        assert table.get_row("order-events.dlq:0:1")[4] == "yes"  # REDRIVEN

        # Once redriven, it is skipped unless forced.
        await pilot.press("space", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "skipped" in screen.message, "the skip")
        assert footer_label(app, "F") == "Force"
        await pilot.press("space", "F")
        await until(pilot, lambda: footer_label(app, "F") == "No force", "the toggle's label")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: runtime.redrives[-1][3], "a forced redrive")
        await until(pilot, lambda: screen.message == "redriven 1", "the forced redrive")


async def test_the_highlighted_record_is_shown_in_full_beneath_the_table() -> None:
    runtime = FakeRuntime()
    # A reason longer than an 80-column table leaves room for, and a value a terminal
    # would act on (escape and control bytes) if shown raw.
    poison = runtime.letters[1]
    long_reason = "value is not JSON: " + "the parser gave up somewhere " * 4 + "(char 41)"
    runtime.letters[1] = replace(
        poison,
        value=b"\x1b[2J\x00{oops\n",
        headers=(("dlq-reason", long_reason.encode()), *poison.headers[1:]),
    )
    app = deck(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_ready(pilot)
        app.push_screen(DeadLettersScreen(None))
        await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "Dead letters")
        screen = app.screen
        assert isinstance(screen, DeadLettersScreen)
        await until(pilot, lambda: screen.loaded, "the dead letters to load")
        detail = screen.query_one("#dlq-detail", Static)

        def shown() -> str:
            return " ".join(str(detail.render()).split())

        assert detail.border_title == runtime.letters[0].position
        await pilot.press("down")
        await until(pilot, lambda: detail.border_title == poison.position, "the next record")
        assert long_reason in shown()  # whole, where the table's REASON column is cut
        assert "value \\x1b[2J\\x00{oops\\n" in shown()
        assert "\x1b" not in str(detail.render())

        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditValueScreen), "the edit modal")
        app.screen.query_one(TextArea).load_text('{"fixed": true}')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, "the edit modal to close")
        await until(pilot, lambda: 'edited {"fixed": true}' in shown(), "the edit in the box")
