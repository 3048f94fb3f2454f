"""Submit: place an order from the keyboard, or a burst of them, and follow each one.

The form validates with the API's own pydantic models (``orderdeck.orders``) and submits
through ``runtime.submit_order``, the same path as ``POST /api/v1/orders``. The burst
generator sends N orders at R per second with a chosen mix of good, declined and
out-of-stock orders (see ``burst_plan``). Every order lands in the results list with its
live status; ``enter`` on a result opens its journey on the Orders screen.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select, Static
from textual.worker import get_current_worker

from orderdeck.errors import OrderdeckError
from orderdeck.events import FINAL_STATUSES
from orderdeck.orders import OrderRequest, OrderValidationError
from orderdeck.screens.base import DeckScreen, after_queued_keys
from orderdeck.screens.burst_plan import BurstMix, PlannedOrder, plan_burst
from orderdeck.screens.protocol import ShowOrderRequested
from orderdeck.widgets.deck_table import DeckTable
from orderdeck.widgets.formatting import WIDE_FROM, money, short_id, state_style

if TYPE_CHECKING:
    from orderdeck.store import Product

log = logging.getLogger(__name__)

RESULT_COLUMNS = (
    ("kind", "KIND"),
    ("customer", "CUSTOMER"),
    ("product", "PRODUCT"),
    ("qty", "QTY"),
    ("order", "ORDER ID"),
    ("status", "STATUS"),
)
#: The burst kinds in the narrow layout's 8 columns.
KIND_SHORT = {"out-of-stock": "no stock"}
RESULTS_KEPT = 200
BURST_CONCURRENCY = 32
MAX_BURST = 100_000
MAX_RATE = 5_000


@dataclass(frozen=True)
class SubmitResult:
    """One submitted order (or a failed attempt) in the results list."""

    seq: int
    kind: str
    customer_id: str
    product_id: str
    quantity: int
    order_id: str | None
    status: str
    error: str = ""


def _form_field(api_field: str) -> str:
    """The form field an API field name (``customerId``, ``items.0.productId``...) maps to."""
    for key, name in (("customer", "customer"), ("product", "product"), ("quantity", "quantity")):
        if key in api_field.lower():
            return name
    return "customer"


class SubmitScreen(DeckScreen):
    """Single-order form, burst generator and the results of both."""

    TITLE_TEXT = "Submit"

    #: Arriving on the screen must not put the cursor in a field: digits switch screens.
    AUTO_FOCUS = "#results"
    HOME_FOCUS = "#results"
    FIELD_ACTIONS = frozenset({"leave_field", "submit", "burst", "focus_results"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Submit", priority=True),
        Binding("ctrl+b", "burst", "Burst", priority=True),
        Binding("ctrl+r", "focus_results", "Results"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.results: deque[SubmitResult] = deque(maxlen=RESULTS_KEPT)
        self._seq = itertools.count(1)
        self._dirty = False
        self._products_loaded = False
        self._products: list[Product] = []
        self.burst_sent = 0
        self.burst_failed = 0
        self.burst_total = 0
        self.bursting = False
        #: The value each field had when its message was shown (the message is about it).
        self._faulted_values: dict[str, object] = {}

    def body(self) -> ComposeResult:
        with Horizontal(id="submit-top"):
            with Vertical(id="order-form", classes="box"):
                with Horizontal(classes="field"):
                    yield Label("Customer", classes="label")
                    yield Input(value="alice", placeholder="customer id", id="customer")
                yield Static(classes="field-error", id="customer-error")
                with Horizontal(classes="field"):
                    yield Label("Product", classes="label")
                    yield Select[str]([], prompt="loading catalog…", id="product", compact=True)
                yield Static(classes="field-error", id="product-error")
                with Horizontal(classes="field"):
                    yield Label("Quantity", classes="label")
                    yield Input(value="1", type="integer", id="quantity")
                yield Static(classes="field-error", id="quantity-error")
                with Horizontal(classes="buttons"):
                    yield Button("Submit  ctrl+s", id="submit", variant="primary", compact=True)
                    yield Static(id="submit-status")
            with Vertical(id="burst-form", classes="box"):
                with Horizontal(classes="field"):
                    yield Label("Orders", classes="label")
                    yield Input(value="100", type="integer", id="burst-n")
                    yield Label("per sec", classes="label short")
                    yield Input(value="50", type="integer", id="burst-rate")
                with Horizontal(classes="field"):
                    yield Label("Mix good", classes="label")
                    yield Input(value="80", type="integer", id="mix-good")
                    yield Label("declined", classes="label short")
                    yield Input(value="10", type="integer", id="mix-declined")
                with Horizontal(classes="field"):
                    yield Label("", classes="label")
                    yield Static("", classes="spacer")
                    yield Label("no stock", classes="label short")
                    yield Input(value="10", type="integer", id="mix-oos")
                with Horizontal(classes="buttons"):
                    yield Button("Burst  ctrl+b", id="burst", variant="warning", compact=True)
                    yield Static(id="burst-status")
        yield DeckTable(id="results", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#order-form").border_title = "New order"
        self.query_one("#burst-form").border_title = "Burst generator"
        table = self.query_one("#results", DataTable)
        table.border_title = "Results  (enter: journey)"
        self._columns_for(self.app.size.width)
        self._show_burst_status()
        self.query_one("#submit-status", Static).update(
            Content.styled("tab: next field · enter: send", "dim")
        )

    # ------------------------------------------------------------------ refresh

    def refresh_live(self, *, full: bool) -> None:
        if not self._products_loaded:
            self.load_products()
        if full:
            self._refresh_statuses()
        if self._dirty:
            self._render_results()
        if self.bursting or full:
            self._show_burst_status()

    def on_screen_resume(self) -> None:
        # Not on the resume of a screen built ahead (screens.prebuild): its Select may not be
        # mounted yet; its first tick loads the catalog.
        if self.deck.ready and self.is_current:
            self.load_products()
        super().on_screen_resume()

    _wide: bool | None = None

    def on_resize(self) -> None:
        self._columns_for(self.size.width)

    def _columns_for(self, width: int) -> None:
        """Full order ids from 120 columns; below, the id's tail and tighter columns."""
        wide = width >= WIDE_FROM
        if wide == self._wide:
            return
        self._wide = wide
        table = self.query_one("#results", DataTable)
        table.clear(columns=True)
        sizes = (12, 17, 16, 3, 36, 16) if wide else (8, 13, 13, 3, 9, 16)
        for (key, title), size in zip(RESULT_COLUMNS, sizes, strict=True):
            table.add_column(title, key=key, width=size)
        self._dirty = True
        if self.is_mounted:
            self._render_results()

    def load_products(self) -> None:
        """Ask for the live catalog (stock included); :meth:`store_read` fills the list."""
        self.read_store("products", self.runtime.store.list_products, restart=False)

    def _refresh_statuses(self) -> None:
        pending = [
            r.order_id for r in self.results if r.order_id and r.status not in FINAL_STATUSES
        ]
        if pending:
            # One statement for every order still in flight, never one read per row.
            self.read_store("statuses", self.runtime.store.order_statuses, pending, restart=False)

    def store_read(self, kind: str, value: object) -> None:
        if kind == "products":
            self._show_products(cast("list[Product]", value))
        elif kind == "statuses":
            self._show_statuses(cast("dict[str, str]", value))

    def _show_products(self, products: list[Product]) -> None:
        """Fill the product list from the catalog, keeping the choice."""
        select = self.query_one("#product", Select)
        parts = select.walk_children(Widget)
        if not (select.is_mounted and all(part.is_mounted for part in parts)):
            # A screen built ahead can be mounted before its Select's own parts are (seen:
            # the Select mounted, its SelectCurrent not yet): the catalog stays unloaded and
            # the next refresh asks for it again.
            return
        chosen = select.value
        options = [(f"{p.name} · {money(p.priceCents)} · {p.stock:,} left", p.id) for p in products]
        # Loaded: the list's blank entry stops saying it is loading.
        select.prompt = "choose a product" if products else "the catalog is empty"
        select.set_options(options)
        ids = {p.id for p in products}
        if isinstance(chosen, str) and chosen in ids:
            select.value = chosen
        elif products:
            select.value = products[0].id
        self._products = products
        self._products_loaded = True

    def _show_statuses(self, statuses: dict[str, str]) -> None:
        changed = False
        for index, result in enumerate(self.results):
            if result.order_id and result.status not in FINAL_STATUSES:
                status = statuses.get(result.order_id, result.status)
                if status != result.status:
                    self.results[index] = replace(result, status=status)
                    changed = True
        if changed:
            self._dirty = True
            self._render_results()

    def _render_results(self) -> None:
        self._dirty = False
        table = self.query_one("#results", DataTable)
        keep = None
        # On the newest row (the top), the cursor stays on the newest; else on its order.
        if table.row_count and table.cursor_row > 0:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        with self.prevent(DataTable.RowHighlighted):
            table.clear()
            for result in sorted(self.results, key=lambda r: r.seq, reverse=True):
                status = (
                    Content.styled(f"✘ {result.error}", "red")
                    if result.error
                    else Content.styled(result.status, state_style(result.status))
                )
                table.add_row(
                    result.kind if self._wide else KIND_SHORT.get(result.kind, result.kind),
                    result.customer_id,
                    result.product_id.removeprefix("sku-") if not self._wide else result.product_id,
                    str(result.quantity),
                    (result.order_id or "-") if self._wide else short_id(result.order_id),
                    status,
                    key=str(result.seq),
                )
            if keep is not None and keep in table.rows:
                table.move_cursor(row=table.get_row_index(keep), animate=False)

    def _add_result(self, result: SubmitResult) -> None:
        self.results.append(result)
        self._dirty = True

    # ------------------------------------------------------------------ single order

    def action_submit(self) -> None:
        """Validate the form with the API's models and submit it."""
        after_queued_keys(self, self._submit)

    def _submit(self) -> None:
        for name in ("customer", "product", "quantity"):
            error = self.query_one(f"#{name}-error", Static)
            error.update("")
            error.display = False
        customer = self.query_one("#customer", Input).value
        product = self.query_one("#product", Select).value
        quantity_text = self.query_one("#quantity", Input).value.strip()
        try:
            quantity = int(quantity_text)
        except ValueError:
            self._field_error("quantity", "must be a whole number")
            return
        try:
            request = OrderRequest.single(
                customer, product if isinstance(product, str) else "", quantity
            )
        except OrderValidationError as exc:
            for field in exc.fields:
                self._field_error(_form_field(field.field), field.reason)
            return
        self._submit_one(request)

    @on(Input.Changed, "#customer, #quantity")
    @on(Select.Changed, "#product")
    def _field_changed(self, event: Input.Changed | Select.Changed) -> None:
        """A field's message is about the value it had: it goes once the value changes."""
        name = event.control.id
        if name is None:
            return
        error = self.query_one(f"#{name}-error", Static)
        # A Changed still queued from before the submit carries the value the message is about.
        if error.display and event.value != self._faulted_values.get(name):
            error.update("")
            error.display = False

    def _field_error(self, name: str, reason: str) -> None:
        field = self.query_one(f"#{name}")
        self._faulted_values[name] = getattr(field, "value", None)
        error = self.query_one(f"#{name}-error", Static)
        error.update(Content.styled(f"↳ {reason}", "red"))
        error.display = True
        self.query_one("#submit-status", Static).update(Content.styled("not sent", "red"))

    @on(Input.Submitted, "#customer, #quantity")
    def _enter_in_form(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    @work(group="submit", exit_on_error=False)
    async def _submit_one(self, request: OrderRequest) -> None:
        status = self.query_one("#submit-status", Static)
        status.update(Content.styled("sending…", "yellow"))
        item = request.items[0]
        seq = next(self._seq)
        try:
            submitted = await self.runtime.submit_order(request)
        except OrderValidationError as exc:  # e.g. a product that left the catalog
            for field in exc.fields:
                self._field_error(_form_field(field.field), field.reason)
            return
        except Exception as exc:  # OrderdeckError, or anything the producer raised
            if not isinstance(exc, OrderdeckError):
                log.exception("submitting an order failed")
            status.update(Content.styled(str(exc) or type(exc).__name__, "red"))
            self._add_result(
                SubmitResult(
                    seq,
                    "form",
                    request.customerId,
                    item.productId,
                    item.quantity,
                    None,
                    "failed",
                    str(exc),
                )
            )
            return
        status.update(
            Content.assemble(("✔ sent ", "green"), (short_id(submitted.order_id), "bold"))
        )
        self._add_result(
            SubmitResult(
                seq,
                "form",
                request.customerId,
                item.productId,
                item.quantity,
                submitted.order_id,
                submitted.response.status,
            )
        )
        self._render_results()

    # ------------------------------------------------------------------ burst

    def action_burst(self) -> None:
        """Start a burst with the form's settings, or stop the running one."""
        after_queued_keys(self, self._burst)

    def _burst(self) -> None:
        if self.bursting:
            self.workers.cancel_group(self, "burst")
            return
        try:
            n = int(self.query_one("#burst-n", Input).value or 0)
            per_second = int(self.query_one("#burst-rate", Input).value or 0)
            mix = BurstMix(
                int(self.query_one("#mix-good", Input).value or 0),
                int(self.query_one("#mix-declined", Input).value or 0),
                int(self.query_one("#mix-oos", Input).value or 0),
            )
        except ValueError:
            self.notify("burst settings must be whole numbers", severity="error")
            return
        if not 1 <= n <= MAX_BURST or not 1 <= per_second <= MAX_RATE or sum(mix.weights()) <= 0:
            self.notify(
                f"burst: 1..{MAX_BURST:,} orders at 1..{MAX_RATE:,}/s with a non-zero mix",
                severity="error",
            )
            return
        # A fresh tag per burst keeps customers apart from earlier runs (credit limits).
        if not self._products:
            self.notify("the catalog is still loading; try again in a moment", severity="warning")
            return
        plan = plan_burst(n, mix, self._products, uuid.uuid4().hex[:3])
        self.run_burst(plan, per_second)

    @on(Button.Pressed, "#burst")
    def _burst_pressed(self) -> None:
        self.action_burst()

    @work(group="burst", exclusive=True, exit_on_error=False, name="burst")
    async def run_burst(self, plan: list[PlannedOrder], per_second: float) -> None:
        """Send ``plan`` at ``per_second``, at most BURST_CONCURRENCY in flight."""
        worker = get_current_worker()
        self.bursting = True
        self.burst_sent = self.burst_failed = 0
        self.burst_total = len(plan)
        gate = asyncio.Semaphore(BURST_CONCURRENCY)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        try:
            for index, planned in enumerate(plan):
                if worker.is_cancelled:
                    break
                delay = start + index / per_second - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await gate.acquire()
                task = asyncio.create_task(self._send_planned(planned, gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self.bursting = False
            self._show_burst_status()

    async def _send_planned(self, planned: PlannedOrder, gate: asyncio.Semaphore) -> None:
        seq = next(self._seq)
        try:
            request = OrderRequest.single(planned.customer_id, planned.product_id, planned.quantity)
            submitted = await self.runtime.submit_order(request)
        except Exception as exc:  # counted and listed: one failure must not stop a burst
            self.burst_failed += 1
            self._add_result(
                SubmitResult(
                    seq,
                    planned.kind,
                    planned.customer_id,
                    planned.product_id,
                    planned.quantity,
                    None,
                    "failed",
                    str(exc),
                )
            )
        else:
            self.burst_sent += 1
            self._add_result(
                SubmitResult(
                    seq,
                    planned.kind,
                    planned.customer_id,
                    planned.product_id,
                    planned.quantity,
                    submitted.order_id,
                    submitted.response.status,
                )
            )
        finally:
            gate.release()

    def _show_burst_status(self) -> None:
        status = self.query_one("#burst-status", Static)
        if not self.burst_total:
            status.update(Content.styled("idle", "dim"))
            return
        done = self.burst_sent + self.burst_failed
        state = ("running", "bold yellow") if self.bursting else ("done", "bold green")
        if not self.bursting and done < self.burst_total:
            state = ("stopped", "bold red")
        status.update(
            Content.assemble(
                state,
                (f"  {done:,}/{self.burst_total:,} sent", ""),
                (f"  {self.burst_failed:,} failed", "red" if self.burst_failed else "dim"),
            )
        )

    # ------------------------------------------------------------------ results

    def action_focus_results(self) -> None:
        """Move to the results list."""
        self.query_one("#results", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        result = next((r for r in self.results if str(r.seq) == key), None)
        if result is not None and result.order_id:
            self.post_message(ShowOrderRequested(result.order_id))
