"""``RowList``, the Orders list: what it draws, where its cursor goes, what it tells.

A small app holds only the widget, so each test sees the lines it draws (``render_line``,
the strips Textual composes the screen from) and the messages it posts.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.content import Content

from orderdeck.widgets.row_list import Column, RowList
from tests.screens.helpers import until

COLUMNS: tuple[Column, ...] = (("id", "ID", 6), ("name", "NAME", 8), ("n", "N", 3))


def rows(count: int) -> list[tuple[str, tuple[Content | str, ...]]]:
    return [
        (f"k{n}", (f"id-{n}", Content.styled(f"name {n}", "green"), f"{n:>3}"))
        for n in range(count)
    ]


class ListApp(App[None]):
    CSS: ClassVar[str] = "RowList { height: 6; }"  # the header and five rows

    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[str] = []
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield RowList(id="list")

    def on_mount(self) -> None:
        listing = self.query_one(RowList)
        listing.set_columns(COLUMNS)
        listing.set_rows(rows(20))
        listing.focus()

    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        self.highlighted.append(event.key)

    def on_row_list_selected(self, event: RowList.Selected) -> None:
        self.selected.append(event.key)


def drawn(listing: RowList) -> list[str]:
    return [listing.render_line(y).text.rstrip() for y in range(listing.size.height)]


async def test_the_header_stays_on_top_and_the_cursor_keys_scroll_the_rows() -> None:
    app = ListApp()
    async with app.run_test(size=(40, 10)) as pilot:
        listing = app.query_one(RowList)
        await until(pilot, lambda: listing.size.height == 6, "the list laid out")
        assert drawn(listing)[:2] == [" ID      NAME      N", " id-0    name 0      0"]
        await pilot.press("j", "j", "down")
        assert listing.cursor_key == "k3"
        assert app.highlighted == ["k1", "k2", "k3"]
        await pilot.press("G")
        await pilot.pause()
        assert listing.cursor_row == 19
        lines = drawn(listing)
        assert lines[0] == " ID      NAME      N"  # still the header, scrolled to the end
        assert lines[-1] == " id-19   name 19    19"
        await pilot.press("g", "enter")
        assert listing.cursor_row == 0
        assert app.selected == ["k0"]


async def test_new_rows_keep_the_cursor_on_its_key_and_post_nothing() -> None:
    app = ListApp()
    async with app.run_test(size=(40, 10)) as pilot:
        listing = app.query_one(RowList)
        await pilot.press("j", "j")
        assert listing.cursor_key == "k2"
        seen = list(app.highlighted)
        # Two rows arrive on top: the cursor follows its row to index 4.
        listing.set_rows(
            [("new1", ("n1", "a", "1")), ("new2", ("n2", "b", "2")), *rows(20)],
            cursor_on=listing.cursor_key,
        )
        await pilot.pause()
        assert (listing.cursor_row, listing.cursor_key) == (4, "k2")
        assert app.highlighted == seen
        # Its row gone, the cursor stays at its index (the last row at most).
        listing.set_rows(rows(3), cursor_on="k9")
        assert (listing.cursor_row, listing.cursor_key) == (2, "k2")
        listing.set_rows([])
        assert (listing.cursor_row, listing.cursor_key) == (0, None)
        await pilot.press("j", "enter")  # keys on an empty list do nothing
        assert app.selected == []


async def test_long_cells_end_in_an_ellipsis_and_keep_their_styles() -> None:
    app = ListApp()
    async with app.run_test(size=(40, 10)) as pilot:
        listing = app.query_one(RowList)
        listing.set_rows([("long", ("abcdefghij", Content.styled("a long name", "red"), "7"))])
        await pilot.pause()
        line = listing.render_line(1)
        assert line.text.rstrip() == " abcde…  a long …  7"
        red = [
            seg.text
            for seg in line
            if seg.style is not None
            and seg.style.color is not None
            and tuple(seg.style.color.get_truecolor()) == (255, 0, 0)
        ]
        assert "".join(red) == "a long …"


async def test_a_click_moves_the_cursor_and_a_second_click_selects() -> None:
    app = ListApp()
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.click(RowList, offset=(2, 3))  # the third row (the header is line 0)
        assert app.highlighted == ["k2"]
        await pilot.click(RowList, offset=(2, 3))
        assert app.selected == ["k2"]
        await pilot.click(RowList, offset=(2, 0))  # the header: nothing
        assert app.highlighted == ["k2"]
