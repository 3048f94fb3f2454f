"""Orders: recent orders from the store with a status filter, and the selected order's journey.

The list refreshes with the app's poll while this screen is shown; the journey of an order
still in flight is re-read on each refresh so its hops appear as the services handle it.
Every read runs on the store's thread (``DeckScreen.read_store``): one store call per
refresh brings the list (one statement) and the selected journey back together.
``u`` swaps the list for the stuck orders (not final 30 s after acceptance, the store's
``stuck_orders``) with the hop each stopped after and for how long; ``u`` again restores it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Input, Static

from orderdeck.events import FINAL_STATUSES
from orderdeck.screens.base import DeckScreen
from orderdeck.widgets.formatting import WIDE_FROM, clock, money, short_id, state_style
from orderdeck.widgets.journey import JourneyView
from orderdeck.widgets.row_list import RowList

if TYPE_CHECKING:
    from orderdeck.store import OrderSummary, OrderView
    from orderdeck.store.views import StuckOrder
    from orderdeck.widgets.runtime_link import StoreReader

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
#: The stuck view: where each order stopped and how long ago it was accepted.
STUCK_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ORDER ID", 36),
    ("customer", "CUSTOMER", 16),
    ("status", "STATUS", 18),
    ("hop", "STOPPED AFTER", 22),
    ("age", "AGE", 8),
    ("created", "CREATED", 8),
)
NARROW_STUCK_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ORDER ID", 9),
    ("customer", "CUSTOMER", 12),
    ("status", "STATUS", 16),
    ("hop", "STOPPED AFTER", 20),
    ("age", "AGE", 8),
)
#: An order not final this long after acceptance is stuck (the issue's and the CLI's default).
STUCK_AFTER_S = 30.0


def age(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h01m``: how long an order has waited, short enough for 8 columns."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def read_stuck(
    store: StoreReader, older_than_s: float, limit: int, selected: str | None, journey: bool
) -> tuple[list[StuckOrder], OrderView | None]:
    """The stuck orders, oldest first, and (like :func:`read_listing`) the selected journey."""
    orders = store.stuck_orders(older_than_s, limit)
    if selected is None and orders:
        selected = orders[0].id
    view = store.get_order(selected) if journey and selected is not None else None
    return orders, view


def read_listing(
    store: StoreReader, status: str | None, limit: int, selected: str | None, journey: bool
) -> tuple[list[OrderSummary], OrderView | None]:
    """The newest orders (in ``status``) and, when ``journey``, the selected order's view
    (the newest listed one if none is selected): what one refresh of the screen needs."""
    orders, _ = store.list_orders(status=status, limit=limit)
    if selected is None and orders:
        selected = orders[0].id
    view = store.get_order(selected) if journey and selected is not None else None
    return orders, view


class OrdersScreen(DeckScreen):
    """Recent orders on top, the journey of the highlighted one below."""

    TITLE_TEXT = "Orders"

    HOME_FOCUS = "#orders-table"
    FIELD_ACTIONS = frozenset({"leave_field"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_status(1)", "Status"),
        Binding("S", "cycle_status(-1)", "Previous status", show=False),
        Binding("a", "all_statuses", "All"),
        Binding("u", "show_stuck", "Stuck"),
        Binding("u", "show_all_orders", "All"),
        Binding("slash", "find", "Find id", key_display="/"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status_filter: str | None = None
        self.selected_id: str | None = None
        self._listed: list[tuple[str, str, str]] = []
        self._ids: list[str] = []
        #: The filter of the rows on display (``status_filter`` once its read came back).
        self.shown_filter: str | None = None
        self.lists_shown = 0
        #: Whether the table lists the stuck orders instead of the newest ones.
        self.stuck = False

    def body(self) -> ComposeResult:
        with Horizontal(id="orders-bar"):
            yield Static(id="orders-filter")
            yield Input(placeholder="/ find order id", id="orders-find")
        yield RowList(id="orders-table")
        yield JourneyView(id="journey")

    def on_mount(self) -> None:
        self._columns_for(self.app.size.width)
        self._show_filter()

    _wide: bool | None = None
    _layout: tuple[bool, bool] | None = None

    def on_resize(self) -> None:
        self._columns_for(self.size.width)

    def _columns_for(self, width: int) -> None:
        """From 120 columns the whole id and both times; below, the id's tail and AMOUNT."""
        wide = width >= WIDE_FROM
        if (wide, self.stuck) == self._layout:
            return
        self._wide = wide
        self._layout = (wide, self.stuck)
        if self.stuck:
            columns = STUCK_COLUMNS if wide else NARROW_STUCK_COLUMNS
        else:
            columns = COLUMNS if wide else NARROW_COLUMNS
        self.query_one(RowList).set_columns(columns)
        self._listed = []
        if self.is_mounted:
            self._show_filter()
        if self._mounted_once and self.deck.ready:
            self.reload()

    def refresh_live(self, *, full: bool) -> None:
        if full:
            self.reload(restart=False)

    def reload(self, *, restart: bool = True) -> None:
        """Re-read the list (keeping the highlighted order) and the selected journey.

        ``restart=False`` is the periodic refresh: it waits for a read still under way.
        """
        # One kind for both views: a list read still under way when ``u`` flips is
        # superseded, and its answer (tagged with its view) is dropped if it comes anyway.
        self.read_store(
            "list",
            self._read_tagged,
            self.stuck,
            self.status_filter,
            self.selected_id,
            self._journey_stale(),
            restart=restart,
        )

    def _read_tagged(
        self, stuck: bool, status: str | None, selected: str | None, journey: bool
    ) -> tuple[bool, object]:
        """On the store's thread: the list of the view asked for, tagged with that view."""
        store = self.runtime.store
        if stuck:
            return True, read_stuck(store, STUCK_AFTER_S, LIST_LIMIT, selected, journey)
        return False, read_listing(store, status, LIST_LIMIT, selected, journey)

    def store_read(self, kind: str, value: object) -> None:
        if kind == "list":
            stuck, answer = cast("tuple[bool, object]", value)
            if stuck != self.stuck:
                return  # asked for before ``u`` flipped the view
            if stuck:
                stuck_rows, view = cast("tuple[list[StuckOrder], OrderView | None]", answer)
                self._show_stuck(stuck_rows)
            else:
                orders, view = cast("tuple[list[OrderSummary], OrderView | None]", answer)
                self._show_list(orders)
            if view is not None and view.id == self.selected_id:
                self._journey_view(view)
        elif kind == "journey":
            view = cast("OrderView | None", value)
            if view is not None and view.id == self.selected_id:
                self._journey_view(view)
        elif kind == "find":
            found = cast("OrderView | None", value)
            if found is None:
                self._not_found(self._finding)
            else:
                self.show_order(found.id)

    def _show_list(self, orders: list[OrderSummary]) -> None:
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
        signature = [
            (order.id, row[2].plain, clock(order.updatedAt))
            for order, row in zip(orders, rows, strict=True)
        ]
        self._fill([order.id for order in orders], rows, signature)

    def _show_stuck(self, orders: list[StuckOrder]) -> None:
        """The stuck rows: status, the last event the journey reached, and the age."""
        wide = bool(self._wide)
        rows = [
            (
                order.id if wide else short_id(order.id),
                order.customerId,
                Content.styled(f"● {order.status}", state_style(order.status)),
                order.lastEvent or "(no event)",
                f"{age(order.stuckForS):>8}",
                *((clock(order.createdAt)[:8],) if wide else ()),
            )
            for order in orders
        ]
        signature = [
            (order.id, row[2].plain, "".join(str(cell) for cell in row[3:]))
            for order, row in zip(orders, rows, strict=True)
        ]
        self._fill([order.id for order in orders], rows, signature)

    def _fill(
        self,
        ids: list[str],
        rows: list[tuple[Content | str, ...]],
        signature: list[tuple[str, str, str]],
    ) -> None:
        """Put ``rows`` in the list unless ``signature`` (what the rows show that can change)
        is what it shows already, keeping the cursor; both the list and the stuck view."""
        table = self.query_one(RowList)
        self._ids = ids
        self.shown_filter = self.status_filter
        self.lists_shown += 1
        # Arriving on the screen (or a new filter) shows the newest order's journey, even
        # when the new filter lists the very rows on display.
        if self.selected_id is None and ids:
            self.selected_id = ids[0]
        if signature != self._listed:
            self._listed = signature
            table.set_rows(list(zip(ids, rows, strict=True)), cursor_on=self.selected_id)
        elif (index := table.index_of(self.selected_id or "")) is not None:
            table.move_cursor(index)
        if self.selected_id is None:
            self.query_one(JourneyView).show(None)

    def _journey_stale(self) -> bool:
        """Whether the selected order's journey must be read again (finished ones do not
        change)."""
        current = self.query_one(JourneyView).order
        return not (
            current is not None
            and current.id == self.selected_id
            and current.status in FINAL_STATUSES
            and current.journey
            and all(h.processedAt is not None for h in current.journey)
        )

    def _journey_view(self, view: OrderView) -> None:
        self.query_one(JourneyView).show(view, self.runtime.names.prefix)

    def _show_journey(self) -> None:
        if self.selected_id is None:
            self.query_one(JourneyView).show(None)
        elif self._journey_stale():
            self.read_store("journey", self.runtime.store.get_order, self.selected_id)

    @on(RowList.Selected)
    def _row_selected(self, event: RowList.Selected) -> None:
        self.selected_id = event.key
        self._show_journey()

    @on(RowList.Highlighted)
    def _row_highlighted(self, event: RowList.Highlighted) -> None:
        if event.key != self.selected_id:
            self.selected_id = event.key
            self._show_journey()

    def show_order(self, order_id: str) -> None:
        """Select ``order_id`` (from another screen) and show its journey."""
        self.status_filter = None
        self.selected_id = order_id
        if not self._mounted_once:
            return  # shown by the first tick once the screen is composed
        if self.stuck:
            self._set_stuck(False, keep=order_id)
            self.query_one(RowList).focus()
            return
        self._show_filter()
        if self.deck.ready:
            self.reload()
        self.query_one(RowList).focus()

    def action_cycle_status(self, step: int) -> None:
        """Show only orders in the next (or previous) status, newest first."""
        index = STATUS_FILTERS.index(self.status_filter)
        self._set_filter(STATUS_FILTERS[(index + step) % len(STATUS_FILTERS)])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("show_stuck", "show_all_orders"):
            if not super().check_action(action, parameters):
                return False
            return self.stuck == (action == "show_all_orders")
        return super().check_action(action, parameters)

    def action_show_stuck(self) -> None:
        """``u``: only the orders not final 30 s after acceptance, where and how long stuck."""
        self._set_stuck(True)

    def action_show_all_orders(self) -> None:
        """``u`` again: back to the newest orders under the status filter."""
        self._set_stuck(False)

    def _set_stuck(self, stuck: bool, keep: str | None = None) -> None:
        self.stuck = stuck
        self.selected_id = keep
        self._listed = []
        self._columns_for(self.size.width or self.app.size.width)  # reloads: new columns
        self._show_filter()
        self.refresh_bindings()

    def action_all_statuses(self) -> None:
        """Drop the status filter."""
        self._set_filter(None)

    def _set_filter(self, status: str | None) -> None:
        self.status_filter = status
        # A new filter starts at its newest match, not wherever the cursor was.
        self.selected_id = None
        if self.stuck:  # a status filter leaves the stuck view
            self._set_stuck(False)
            return
        self._show_filter()
        self.reload()

    def action_find(self) -> None:
        """Put the cursor in the find box (an order id, whole or any part of it)."""
        self.query_one("#orders-find", Input).focus()

    @on(Input.Submitted, "#orders-find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        self.find(event.value)

    def find(self, text: str) -> bool:
        """Show the order whose id is ``text``, or the newest listed id containing it.

        True when a listed order matched; otherwise the store is asked in the background
        and the order is shown (or a warning) when it answers.
        """
        needle = text.strip().lower().lstrip("…")
        if not needle:
            return False
        found = next((oid for oid in self._ids if needle in oid.lower()), None)
        if found is not None:
            self.show_order(found)
            return True
        # Not listed: perhaps a whole id of an older order; the store answers off the loop.
        self._finding = needle
        self.read_store("find", self.runtime.store.get_order, needle)
        return False

    _finding = ""

    def _not_found(self, needle: str) -> None:
        self.notify(
            f"no order {needle!r} among the {LIST_LIMIT} newest"
            f"{' ' + self.status_filter if self.status_filter else ''}; "
            "give the whole id to look further",
            severity="warning",
        )

    def _show_filter(self) -> None:
        parts: list[tuple[str, str]] = [("status ", "dim")]
        if self.stuck:
            parts += [(f" stuck > {STUCK_AFTER_S:.0f} s ", "reverse bold"), ("  u all", "dim")]
        elif self._wide is False:
            # Eight words do not fit beside the find box at 80 columns: the one in force.
            parts += [(f" {self.status_filter or 'all'} ", "reverse bold"), ("  s/S/a", "dim")]
        else:
            for status in STATUS_FILTERS:
                label = status or "all"
                style = "reverse bold" if status == self.status_filter else "dim"
                parts += [(f" {label} ", style), (" ", "")]
        self.query_one("#orders-filter", Static).update(Content.assemble(*parts))
