"""Orders: recent orders from the store with a status filter, and the selected order's journey.

The list refreshes with the app's poll while this screen is shown; the journey of an order
still in flight is re-read on each refresh so its hops appear as the services handle it.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import DataTable, Static

from orderdeck.events import FINAL_STATUSES
from orderdeck.screens.base import DeckScreen
from orderdeck.widgets.formatting import clock, money, state_style
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


class OrdersScreen(DeckScreen):
    """Recent orders on top, the journey of the highlighted one below."""

    TITLE_TEXT = "Orders"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_status(1)", "Status filter"),
        Binding("S", "cycle_status(-1)", "Previous filter", show=False),
        Binding("a", "all_statuses", "All"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.selected_id: str | None = None
        self._listed: list[tuple[str, str, str]] = []

    def body(self) -> ComposeResult:
        yield Static(id="orders-filter")
        yield DataTable(id="orders-table", cursor_type="row", zebra_stripes=True)
        yield JourneyView(id="journey")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("ORDER ID", key="id", width=36)
        table.add_column("CUSTOMER", key="customer", width=16)
        table.add_column("STATUS", key="status", width=18)
        table.add_column("AMOUNT", key="amount", width=10)
        table.add_column("QTY", key="qty", width=3)
        table.add_column("CREATED", key="created", width=8)
        table.add_column("UPDATED", key="updated", width=8)
        self._show_filter()

    def refresh_live(self, *, full: bool) -> None:
        if full:
            self.reload()

    def reload(self) -> None:
        """Re-read the list (keeping the highlighted order) and the selected journey."""
        table = self.query_one(DataTable)
        orders, _ = self.runtime.store.list_orders(status=self.status_filter, limit=LIST_LIMIT)
        keep = self.selected_id
        rows = [
            (
                order.id,
                order.customerId,
                Content.styled(f"● {order.status}", state_style(order.status)),
                f"{money(order.amountCents):>10}",
                f"{order.itemCount:>3}",
                clock(order.createdAt)[:8],
                clock(order.updatedAt)[:8],
            )
            for order in orders
        ]
        signature = [(r[0], r[2].plain, r[6]) for r in rows]
        if signature == self._listed:
            self._show_journey()
            return
        self._listed = signature
        # Rebuilding moves the cursor; those moves are ours, not the user's choice.
        with self.prevent(DataTable.RowHighlighted):
            table.clear()
            for row in rows:
                table.add_row(*row, key=row[0])
            if keep is not None and keep in table.rows:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
        if self.selected_id is None and rows:
            # Arriving on the screen shows the newest order's journey at once.
            self.selected_id = rows[0][0]
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
        """Show only orders in the next (or previous) status."""
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + step) % len(STATUS_FILTERS)]
        self._show_filter()
        self.reload()

    def action_all_statuses(self) -> None:
        """Drop the status filter."""
        self.status_filter = None
        self._show_filter()
        self.reload()

    def _show_filter(self) -> None:
        parts: list[tuple[str, str]] = [("status ", "dim")]
        for status in STATUS_FILTERS:
            label = status or "all"
            style = "reverse bold" if status == self.status_filter else "dim"
            parts += [(f" {label} ", style), (" ", "")]
        self.query_one("#orders-filter", Static).update(Content.assemble(*parts))
