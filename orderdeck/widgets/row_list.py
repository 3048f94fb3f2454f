"""A table of fixed-width columns drawn line by line: the Orders list.

``DataTable`` measures every cell of every new row (to size auto-width columns) and draws
each visible cell through Rich; a new Orders filter brings 100 new rows, and that cost —
not the store, whose read takes a few milliseconds at a million orders — was most of the
key's latency. The Orders columns have fixed widths, so nothing needs measuring: this widget
keeps each row as one assembled :class:`~textual.content.Content` line and draws only the
lines on screen (Textual's Line API, like the record tail's ``RecordView``). Replacing all
rows is as cheap as patching a few, so a list is always set whole.

It looks and moves like the control center's other tables (``DeckTable``): a bold header
that stays on top, zebra stripes, a row cursor, ``up``/``down``/``j``/``k``, ``g``/``G``,
``home``/``end``, page keys, ``enter`` and a click to choose a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style as RichStyle
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style

#: A column: its key, its title and its width in cells (without the padding around it).
Column = tuple[str, str, int]
#: A row: its key and one cell per column (Content keeps its styles; a str is plain text).
Row = tuple[str, Sequence[Content | str]]


def _cell(cell: Content | str, width: int) -> Content:
    """A cell cut (with an ellipsis) or padded to ``width``, one space either side."""
    content = cell if isinstance(cell, Content) else Content(cell)
    return Content(" ") + content.truncate(width, ellipsis=True, pad=True) + Content(" ")


def assemble_line(cells: Sequence[Content | str], columns: Sequence[Column]) -> Content:
    """The one line a row is drawn as (a row short of cells leaves the last columns blank)."""
    pairs = zip(cells, columns, strict=False)
    return Content("").join(_cell(cell, width) for cell, (_, _, width) in pairs)


class RowList(ScrollView, can_focus=True):
    """Rows of fixed-width columns under a header, with a row cursor."""

    DEFAULT_CSS = """
    RowList {
        background: $surface;
        color: $foreground;
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        & > .row-list--header { text-style: bold; background: $panel; color: $foreground; }
        & > .row-list--even-row { background: $surface-lighten-1 50%; }
        & > .row-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:dark > .row-list--even-row { background: $surface-darken-1 40%; }
        &:focus {
            background-tint: $foreground 5%;
            & > .row-list--header { background-tint: $foreground 5%; }
            & > .row-list--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-list--header",
        "row-list--even-row",
        "row-list--cursor",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First row", show=False),
        Binding("end", "last", "Last row", show=False),
        Binding("g", "first", "First row", show=False),
        Binding("G", "last", "Last row", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved to another row (by a key or a click, not by :meth:`set_rows`)."""

        def __init__(self, row_list: RowList, key: str) -> None:
            super().__init__()
            self.row_list = row_list
            self.key = key

        @property
        def control(self) -> RowList:
            return self.row_list

    class Selected(Message):
        """``enter`` on a row, or a click on the row under the cursor."""

        def __init__(self, row_list: RowList, key: str) -> None:
            super().__init__()
            self.row_list = row_list
            self.key = key

        @property
        def control(self) -> RowList:
            return self.row_list

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns: tuple[Column, ...] = ()
        self._header = Content("")
        self._keys: list[str] = []
        self._cells: list[Sequence[Content | str]] = []
        self._lines: list[Content] = []
        self._index: dict[str, int] = {}
        self._cursor = 0
        #: Drawn lines by (row, kind, width); a kind is the row's look (cursor, stripe).
        self._strips: dict[tuple[int, str, int], Strip] = {}

    # ------------------------------------------------------------------ data

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[str]:
        """The rows' keys, top to bottom."""
        return list(self._keys)

    @property
    def cursor_row(self) -> int:
        """The index of the row under the cursor (0 when the list is empty)."""
        return self._cursor

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, None when the list is empty."""
        return self._keys[self._cursor] if self._keys else None

    def row(self, key: str) -> Sequence[Content | str]:
        """The cells of the row ``key`` (KeyError when it is not listed)."""
        return self._cells[self._index[key]]

    def row_at(self, index: int) -> Sequence[Content | str]:
        return self._cells[index]

    def index_of(self, key: str) -> int | None:
        return self._index.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def set_columns(self, columns: Sequence[Column]) -> None:
        """New columns; the rows are dropped (they belong to the old ones)."""
        self._columns = tuple(columns)
        self._header = assemble_line([title for _, title, _ in columns], columns)
        self.set_rows([])

    def set_rows(self, rows: Sequence[Row], *, cursor_on: str | None = None) -> None:
        """Show ``rows`` instead of the rows listed; the cursor goes to ``cursor_on`` if it
        is among them, else stays on its index (the last row at most). Posts no message:
        the caller chose the rows and knows where the cursor is."""
        self._keys = [key for key, _ in rows]
        self._cells = [cells for _, cells in rows]
        self._lines = [assemble_line(cells, self._columns) for cells in self._cells]
        self._index = {key: n for n, key in enumerate(self._keys)}
        target = self._index.get(cursor_on) if cursor_on is not None else None
        self._cursor = target if target is not None else min(self._cursor, len(rows) - 1)
        self._cursor = max(0, self._cursor)
        self._strips.clear()
        self._resize()
        self._scroll_to_cursor()
        self.refresh()

    def move_cursor(self, row: int, *, announce: bool = False) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view."""
        if not self._keys:
            return
        row = max(0, min(len(self._keys) - 1, row))
        moved = row != self._cursor
        self._cursor = row
        self._scroll_to_cursor()
        self.refresh()
        if moved and announce:
            self.post_message(self.Highlighted(self, self._keys[row]))

    # ------------------------------------------------------------------ keys

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self._cursor + delta, announce=True)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self._cursor + direction * self._rows_visible(), announce=True)

    def action_first(self) -> None:
        self.move_cursor(0, announce=True)

    def action_last(self) -> None:
        self.move_cursor(len(self._keys) - 1, announce=True)

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.Selected(self, self._keys[self._cursor]))

    async def _on_click(self, event: Click) -> None:
        if event.y == 0:
            return  # the header
        index = int(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self._keys):
            self.focus()
            if index == self._cursor:
                self.action_select()
            else:
                self.move_cursor(index, announce=True)

    def on_focus(self) -> None:
        self._strips.clear()  # the cursor and header look different with focus

    def on_blur(self) -> None:
        self._strips.clear()

    # ------------------------------------------------------------------ drawing

    def _rows_visible(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _resize(self) -> None:
        # One line more than the rows: the header, drawn at the top whatever the scroll.
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)

    def on_resize(self) -> None:
        self._strips.clear()
        self._resize()
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        """Scroll just enough for the cursor's row to be visible below the header."""
        top = int(self.scroll_offset.y)
        visible = self._rows_visible()
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False, immediate=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the widget: the header on top, then the rows from the scroll."""
        width = self.scrollable_content_region.width or self.size.width
        base = self.rich_style
        if y == 0:
            return self._strip(self._header, base + self._look("row-list--header"), width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self._lines):
            return Strip.blank(width, base)
        kind = "cursor" if index == self._cursor else "even" if index % 2 == 0 else "odd"
        cached = self._strips.get((index, kind, width))
        if cached is None:
            style = base
            if kind == "cursor":
                style = base + self._look("row-list--cursor")
            elif kind == "even":
                style = base + self._look("row-list--even-row")
            cached = self._strips[(index, kind, width)] = self._strip(
                self._lines[index], style, width
            )
        return cached

    def _look(self, component: str) -> RichStyle:
        return self.get_component_rich_style(component)

    @staticmethod
    def _strip(line: Content, style: RichStyle, width: int) -> Strip:
        segments = line.render_segments(Style.from_rich_style(style))
        return Strip(segments).crop_extend(0, width, style)
