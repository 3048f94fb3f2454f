"""Orders: recent orders from the store with a status filter, and the selected order's journey.

The list refreshes with the app's poll while this screen is shown; the journey of an order
still in flight is re-read on each refresh so its hops appear as the services handle it.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Input, Static

from orderdeck.events import FINAL_STATUSES
from orderdeck.screens.base import DeckScreen
from orderdeck.widgets.deck_table import DeckTable
from orderdeck.widgets.formatting import WIDE_FROM, clock, money, short_id, state_style
from orderdeck.widgets.journey import JourneyView

STATUS_FILTERS: tuple[str | None, ...] = (
    None,
    "confirmed",
    "payment_declined",
    "cancelled",
    "rejected",
    "placed",
    "pending",
    "paid",
)
LIST_LIMIT = 100
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ORDER ID", 36),
    ("customer", "CUSTOMER", 16),
    ("status", "STATUS", 18),
    ("amount", "AMOUNT", 10),
    ("qty", "QTY", 3),
    ("created", "CREATED", 8),
    ("updated", "UPDATED", 8),
)
#: Below 120 columns: the id's tail, and UPDATED gives way (AMOUNT stays).
NARROW_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ORDER ID", 9),
    ("customer", "CUSTOMER", 14),
    ("status", "STATUS", 18),
    ("amount", "AMOUNT", 10),
    ("qty", "QTY", 3),
    ("created", "CREATED", 8),
)


class OrdersScreen(DeckScreen):
    """Recent orders on top, the journey of the highlighted one below."""

    TITLE_TEXT = "Orders"

    HOME_FOCUS = "#orders-table"
    FIELD_ACTIONS = frozenset({"leave_field"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_status(1)", "Status"),
        Binding("S", "cycle_status(-1)", "Previous status", show=False),
        Binding("a", "all_statuses", "All"),
        Binding("slash", "find", "Find id", key_display="/"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.selected_id: str | None = None
        self._listed: list[tuple[str, str, str]] = []
        self._ids: list[str] = []

    def body(self) -> ComposeResult:
        with Horizontal(id="orders-bar"):
            yield Static(id="orders-filter")
            yield Input(placeholder="/ find order id", id="orders-find")
        yield DeckTable(id="orders-table", cursor_type="row", zebra_stripes=True)
        yield JourneyView(id="journey")

    def on_mount(self) -> None:
        self._columns_for(self.app.size.width)
        self._show_filter()

    _wide: bool | None = None

    def on_resize(self) -> None:
        self._columns_for(self.size.width)

    def _columns_for(self, width: int) -> None:
        """From 120 columns the whole id and both times; below, the id's tail and AMOUNT."""
        wide = width >= WIDE_FROM
        if wide == self._wide:
            return
        self._wide = wide
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for key, title, size in COLUMNS if wide else NARROW_COLUMNS:
            table.add_column(title, key=key, width=size)
        self._listed = []
        if self.is_mounted:
            self._show_filter()
        if self._mounted_once and self.deck.ready:
            self.reload()

    def refresh_live(self, *, full: bool) -> None:
        if full:
            self.reload()

    def reload(self) -> None:
        """Re-read the list (keeping the highlighted order) and the selected journey."""
        table = self.query_one(DataTable)
        orders, _ = self.runtime.store.list_orders(status=self.status_filter, limit=LIST_LIMIT)
        keep = self.selected_id
        wide = bool(self._wide)
        rows = [
            (
                order.id if wide else short_id(order.id),
                order.customerId,
                Content.styled(f"● {order.status}", state_style(order.status)),
                f"{money(order.amountCents):>10}",
                f"{order.itemCount:>3}",
                clock(order.createdAt)[:8],
                *((clock(order.updatedAt)[:8],) if wide else ()),
            )
            for order in orders
        ]
        ids = [order.id for order in orders]
        self._ids = ids
        signature = [
            (oid, r[2].plain, clock(o.updatedAt))
            for oid, r, o in zip(ids, rows, orders, strict=True)
        ]
        if signature == self._listed:
            self._show_journey()
            return
        self._listed = signature
        # Rebuilding moves the cursor; those moves are ours, not the user's choice.
        with self.prevent(DataTable.RowHighlighted):
            table.clear()
            for oid, row in zip(ids, rows, strict=True):
                table.add_row(*row, key=oid)
            if keep is not None and keep in table.rows:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
        # Arriving on the screen (or a new filter) shows the newest order's journey.
        if self.selected_id is None and ids:
            self.selected_id = ids[0]
            with self.prevent(DataTable.RowHighlighted):
                table.move_cursor(row=0, animate=False)
        self._show_journey()

    def _show_journey(self) -> None:
        journey = self.query_one(JourneyView)
        if self.selected_id is None:
            journey.show(None)
            return
        current = journey.order
        if (
            current is not None
            and current.id == self.selected_id
            and current.status in FINAL_STATUSES
            and current.journey
            and all(h.processedAt is not None for h in current.journey)
        ):
            return  # finished orders do not change
        journey.show(self.runtime.store.get_order(self.selected_id), self.runtime.names.prefix)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is not None:
            self.selected_id = str(key)
            self._show_journey()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key != self.selected_id:
            self.selected_id = str(key)
            self._show_journey()

    def show_order(self, order_id: str) -> None:
        """Select ``order_id`` (from another screen) and show its journey."""
        self.status_filter = None
        self.selected_id = order_id
        if not self._mounted_once:
            return  # shown by the first tick once the screen is composed
        self._show_filter()
        if self.deck.ready:
            self.reload()
        self.query_one(DataTable).focus()

    def action_cycle_status(self, step: int) -> None:
        """Show only orders in the next (or previous) status, newest first."""
        index = STATUS_FILTERS.index(self.status_filter)
        self._set_filter(STATUS_FILTERS[(index + step) % len(STATUS_FILTERS)])

    def action_all_statuses(self) -> None:
        """Drop the status filter."""
        self._set_filter(None)

    def _set_filter(self, status: str | None) -> None:
        self.status_filter = status
        # A new filter starts at its newest match, not wherever the cursor was.
        self.selected_id = None
        self._show_filter()
        self.reload()

    def action_find(self) -> None:
        """Put the cursor in the find box (an order id, whole or any part of it)."""
        self.query_one("#orders-find", Input).focus()

    @on(Input.Submitted, "#orders-find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        self.find(event.value)

    def find(self, text: str) -> bool:
        """Show the order whose id is ``text``, or the newest listed id containing it."""
        needle = text.strip().lower().lstrip("…")
        if not needle:
            return False
        found = next((oid for oid in self._ids if needle in oid.lower()), None)
        if found is None and self.runtime.store.get_order(needle) is not None:
            found = needle
        if found is None:
            self.notify(
                f"no order {needle!r} among the {LIST_LIMIT} newest"
                f"{' ' + self.status_filter if self.status_filter else ''}; "
                "give the whole id to look further",
                severity="warning",
            )
            return False
        self.show_order(found)
        return True

    def _show_filter(self) -> None:
        parts: list[tuple[str, str]] = [("status ", "dim")]
        if self._wide is False:
            # Eight words do not fit beside the find box at 80 columns: the one in force.
            parts += [(f" {self.status_filter or 'all'} ", "reverse bold"), ("  s/S/a", "dim")]
        else:
            for status in STATUS_FILTERS:
                label = status or "all"
                style = "reverse bold" if status == self.status_filter else "dim"
                parts += [(f" {label} ", style), (" ", "")]
        self.query_one("#orders-filter", Static).update(Content.assemble(*parts))
