"""A bounded, virtual table of tailed Kafka records.

A live tail at thousands of records per second cannot afford a widget (or even a table row
object) per record. ``RecordView`` keeps the last ``capacity`` records in a ring and renders
only the lines on screen (Textual's Line API), so adding a batch costs a few appends and one
refresh however fast records arrive. A filter keeps a second ring of the matching records.

While *following*, the cursor sits on the newest record; moving the cursor stops following
so a record can be read while the stream goes on, and ``end`` resumes following.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from orderdeck.widgets.formatting import clock_ms, ellipsize, short_id

if TYPE_CHECKING:
    from orderdeck.kafka.tail import TailRecord

RecordFilter = Callable[["TailRecord"], bool]
#: True for a record the API fenced after a 503 (asked when its line is drawn).
FencedCheck = Callable[["TailRecord"], bool]

#: (title, width) of each fixed column from 100 columns; the order id takes the rest.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("TIME (UTC)", 12),
    ("P", 2),
    ("OFFSET", 7),
    ("KEY", 9),
    ("TYPE", 25),
)
#: Below 100 columns the key (the order id again, in this pipeline) gives way, and the
#: order id shows its distinguishing tail.
NARROW_COLUMNS: tuple[tuple[str, int], ...] = (
    ("TIME (UTC)", 12),
    ("P", 2),
    ("OFFSET", 7),
)
FULL_ID = 36
NARROW_ORDER_WIDTH = 13
MIN_TYPE_WIDTH = 12
MIN_ORDER_WIDTH = 10


def _layout(width: int) -> tuple[tuple[tuple[str, int], ...], int, int]:
    """(fixed columns, type width, order id width) for a view ``width`` columns wide.

    The whole order id when it fits, the key column too when there is room for both;
    otherwise the id's tail and a type column that gives way down to 12 characters.
    """
    fixed = sum(size for _, size in COLUMNS) + len(COLUMNS)
    if width >= fixed + FULL_ID:
        return COLUMNS[:-1], COLUMNS[-1][1], max(MIN_ORDER_WIDTH, width - fixed)
    fixed = sum(size for _, size in NARROW_COLUMNS) + len(NARROW_COLUMNS)
    if width >= fixed + 26 + FULL_ID:
        return NARROW_COLUMNS, 25, width - fixed - 26
    type_width = max(MIN_TYPE_WIDTH, min(25, width - fixed - NARROW_ORDER_WIDTH - 1))
    return NARROW_COLUMNS, type_width, NARROW_ORDER_WIDTH


def header_text(width: int) -> str:
    """The column titles laid out exactly like the rows."""
    columns, type_width, _ = _layout(width)
    cells = [
        title.rjust(size) if title == "OFFSET" else title.ljust(size) for title, size in columns
    ]
    return ellipsize(" ".join([*cells, "TYPE".ljust(type_width), "ORDER ID"]), width)


#: What a fenced record's TYPE column starts with (see orderdeck/fenced.py).
FENCED_MARK = "✗ fenced"


def row_text(record: TailRecord, width: int, *, fenced: bool = False) -> str:
    """One record as a line of ``width`` columns; a ``fenced`` one says so in its TYPE."""
    columns, type_width, order_width = _layout(width)
    cells = [
        clock_ms(record.timestamp_ms).ljust(12),
        str(record.partition).rjust(2),
        str(record.offset).rjust(7),
    ]
    if len(columns) > len(NARROW_COLUMNS):
        cells.append(short_id(record.key, 9).ljust(9))
    kind = record.event_type or "?"
    if fenced:
        kind = f"{FENCED_MARK} {kind}"
    cells.append(ellipsize(kind, type_width).ljust(type_width))
    order = record.order_id or "-"
    cells.append(order if len(order) <= order_width else short_id(order, order_width))
    return " ".join(cells)


def record_order(record: TailRecord) -> tuple[int, int, int]:
    """The order the view keeps records in: time, then partition and offset."""
    return (record.timestamp_ms, record.partition, record.offset)


def merge_in_time(ring: deque[TailRecord], record: TailRecord) -> int | None:
    """Put ``record`` into ``ring`` (oldest first) by timestamp; its index, or None.

    A tail from the earliest offsets hands over one partition's records after another, so
    appending would show TIME jumping backwards at every partition boundary. Records that
    arrive in time order (the live case) take the fast path, an append. A full ring drops
    its oldest record first, and a record older than everything kept is not kept.
    """
    if not ring or record_order(ring[-1]) <= record_order(record):
        ring.append(record)
        return len(ring) - 1
    index = bisect.bisect_right(ring, record_order(record), key=record_order)
    if ring.maxlen is not None and len(ring) == ring.maxlen:
        if index == 0:
            return None
        ring.popleft()
        index -= 1
    ring.insert(index, record)
    return index


def matches(text: str) -> RecordFilter | None:
    """A filter matching ``text`` against the order id, key or event type; None when empty."""
    needle = text.strip().lower()
    if not needle:
        return None

    def check(record: TailRecord) -> bool:
        return (
            needle in (record.order_id or "").lower()
            or needle in (record.event_type or "").lower()
            or needle in (record.key or "").lower()
        )

    return check


class RecordView(ScrollView, can_focus=True):
    """The last ``capacity`` records of a tail, one line each, with a cursor."""

    DEFAULT_CSS = """
    RecordView {
        background: $surface;
        height: 1fr;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        &:focus { background-tint: $foreground 3%; }
        & > .record-view--cursor { background: $accent 40%; text-style: bold; }
        & > .record-view--dlq { color: $error; }
        & > .record-view--fenced { color: $text-muted; text-style: strike; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "record-view--cursor",
        "record-view--dlq",
        "record-view--fenced",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "follow", "Follow", show=False),
    ]

    follow: reactive[bool] = reactive(True)

    class Selected(Message):
        """The record under the cursor changed (None when the view is empty)."""

        def __init__(self, record: TailRecord | None) -> None:
            super().__init__()
            self.record = record

    def __init__(
        self,
        capacity: int = 10_000,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.capacity = capacity
        self._all: deque[TailRecord] = deque(maxlen=capacity)
        self._shown: deque[TailRecord] = deque(maxlen=capacity)
        self._filter: RecordFilter | None = None
        self._cursor = -1
        self._selected: TailRecord | None = None
        self.received = 0
        #: Marks records the API fenced; asked per drawn line, so a fence is shown however
        #: the record and the 503 raced (set by the screen, None: nothing is fenced).
        self.is_fenced: FencedCheck | None = None

    # ------------------------------------------------------------------ data

    @property
    def shown(self) -> int:
        """How many records pass the filter (and are kept)."""
        return len(self._shown)

    @property
    def kept(self) -> int:
        """How many records the ring holds, filtered or not."""
        return len(self._all)

    @property
    def selected(self) -> TailRecord | None:
        """The record under the cursor."""
        return self._selected

    def records(self) -> list[TailRecord]:
        """The records that pass the filter, oldest first (for tests and export)."""
        return list(self._shown)

    def add_batch(self, records: Iterable[TailRecord]) -> None:
        """Merge a batch in by timestamp; drops the oldest records beyond capacity.

        The batch is sorted first: a tail's batch comes partition by partition, so unsorted
        most records of the second and third partitions would be inserted among the kept ones
        (a search and a shift each); sorted, nearly all of them are appended.
        """
        added = 0
        moved_before_cursor = 0
        check = self._filter
        for record in sorted(records, key=record_order):
            merge_in_time(self._all, record)
            self.received += 1
            if check is None or check(record):
                full = len(self._shown) == self.capacity
                index = merge_in_time(self._shown, record)
                if index is None:
                    continue
                added += 1
                # The cursor stays on its record: one dropped at the front shifts it down,
                # one inserted before it shifts it up.
                if full:
                    moved_before_cursor -= 1
                if index <= self._cursor + moved_before_cursor:
                    moved_before_cursor += 1
        if not added:
            return
        if self.follow:
            self._cursor = len(self._shown) - 1
        elif self._cursor >= 0:
            self._cursor = max(0, min(len(self._shown) - 1, self._cursor + moved_before_cursor))
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self._announce()
        self.refresh()

    def clear(self) -> None:
        """Forget every record (a new tail starts)."""
        self._all.clear()
        self._shown.clear()
        self._cursor = -1
        self.received = 0
        self.follow = True
        self._resize()
        self._announce()
        self.refresh()

    def set_filter(self, check: RecordFilter | None) -> None:
        """Show only records for which ``check`` is true (all when None)."""
        self._filter = check
        self._shown = deque(
            (r for r in self._all if check is None or check(r)), maxlen=self.capacity
        )
        self._cursor = len(self._shown) - 1
        self.follow = True
        self._resize()
        self.scroll_end(animate=False, immediate=False, x_axis=False)
        self._announce()
        self.refresh()

    # ------------------------------------------------------------------ cursor

    def action_cursor(self, delta: int) -> None:
        """Move the cursor; leaving the newest record stops following."""
        self._move_to(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        """Move the cursor by a screenful."""
        self._move_to(self._cursor + direction * max(1, self.size.height - 1))

    def action_first(self) -> None:
        """Jump to the oldest kept record."""
        self._move_to(0)

    def action_follow(self) -> None:
        """Jump to the newest record and keep following."""
        self.follow = True
        self._cursor = len(self._shown) - 1
        self.scroll_end(animate=False, x_axis=False)
        self._announce()
        self.refresh()

    def _move_to(self, index: int) -> None:
        if not self._shown:
            return
        index = max(0, min(len(self._shown) - 1, index))
        self.follow = index == len(self._shown) - 1
        self._cursor = index
        self.scroll_to_region_y(index)
        self._announce()
        self.refresh()

    def scroll_to_region_y(self, index: int) -> None:
        """Scroll just enough for line ``index`` to be visible."""
        top = int(self.scroll_offset.y)
        height = max(1, self.size.height)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False)

    async def _on_click(self, event: Click) -> None:
        index = int(self.scroll_offset.y) + event.y
        if 0 <= index < len(self._shown):
            self.focus()
            self._move_to(index)

    def _announce(self) -> None:
        record = self._shown[self._cursor] if 0 <= self._cursor < len(self._shown) else None
        if record is not self._selected:
            self._selected = record
            self.post_message(self.Selected(record))

    # ------------------------------------------------------------------ rendering

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._shown))

    def on_resize(self) -> None:
        self._resize()

    @property
    def line_width(self) -> int:
        """The columns a line has (the scrollbar's are not the view's)."""
        return self.scrollable_content_region.width or self.size.width

    def render_line(self, y: int) -> Strip:
        """Render the record at screen line ``y`` (Line API)."""
        width = self.line_width
        index = int(self.scroll_offset.y) + y
        base = self.rich_style
        if index >= len(self._shown):
            return Strip.blank(width, base)
        record = self._shown[index]
        fenced = self.is_fenced is not None and self.is_fenced(record)
        style: Style = base
        if index == self._cursor:
            style = base + self.get_component_rich_style("record-view--cursor")
        elif fenced:
            style = base + self.get_component_rich_style("record-view--fenced")
        elif record.topic.endswith(".dlq"):
            style = base + self.get_component_rich_style("record-view--dlq")
        text = row_text(record, width, fenced=fenced)
        return Strip([Segment(text, style)]).crop_extend(0, width, style)
