"""An order's journey across the topics as a timeline: one line per hop, in order.

Each hop is an event record: where it sat in Kafka (topic, partition, offset), when it was
written, which service consumed it and how long after. Reading down the lines is reading
the saga: OrderPlaced → PaymentRequested → StockReservationRequested → OrderConfirmed, or
one of the side paths that ends the order early or compensates a charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from orderdeck.events import FINAL_STATUSES
from orderdeck.widgets.formatting import (
    WIDE_FROM,
    clock,
    clock_ms,
    ellipsize,
    money,
    short_id,
    state_style,
)

if TYPE_CHECKING:
    from orderdeck.store import OrderView


def journey_content(order: OrderView, prefix: str = "", *, narrow: bool = False) -> Content:
    """The order's header, status history and hops as text.

    ``narrow`` (below 120 columns) lays the hops out in 76 columns: topics without their
    ``-events`` suffix, partition and offset as ``p1@37``, and the consuming service left
    out (it is the topic's service); the status history keeps only its times' seconds.
    """
    items = ", ".join(f"{i.quantity} x {i.productId}" for i in order.items) or "-"
    if narrow:
        return _narrow_content(order, prefix, items)
    lines: list[Content] = [
        Content.assemble(
            ("order ", "dim"),
            (order.id, "bold"),
            ("   customer ", "dim"),
            (order.customerId, "bold"),
            ("   ", ""),
            (f"● {order.status}", state_style(order.status)),
            ("" if order.status in FINAL_STATUSES else "  (in flight)", "dim"),
        ),
        Content.assemble(
            ("items ", "dim"),
            (ellipsize(items, 60), ""),
            ("   amount ", "dim"),
            (money(order.amountCents), "bold"),
            ("   refunded ", "dim"),
            (money(order.refundedCents), "bold" if order.refundedCents else ""),
        ),
        Content.assemble(
            ("status ", "dim"),
            *[
                part
                for i, change in enumerate(order.history)
                for part in (
                    (" → " if i else "", "dim"),
                    (change.status, state_style(change.status)),
                    (f" {clock(change.at)}", "dim"),
                )
            ],
        ),
        Content(""),
        Content.styled(
            f"   {'WRITTEN (UTC)':<13} {'TOPIC':<24} {'P':>2} {'OFFSET':>8}  "
            f"{'EVENT':<26} {'CONSUMED BY':<13} AFTER",
            "bold $text-muted",
        ),
    ]
    for index, hop in enumerate(order.journey):
        topic = hop.topic.removeprefix(prefix)
        if hop.processedAt is not None:
            delay_ms = hop.processedAt.timestamp() * 1000 - hop.timestamp
            after = f"{max(0.0, delay_ms):,.0f} ms"
            by = hop.service or "?"
        else:
            after, by = "", "waiting…"
        marker = "└─" if index == len(order.journey) - 1 else "├─"
        lines.append(
            Content.assemble(
                (f" {marker} ", "$accent"),
                (f"{clock_ms(hop.timestamp):<13} ", ""),
                (f"{ellipsize(topic, 24):<24} ", "bold red" if topic.endswith(".dlq") else "bold"),
                (f"{hop.partition:>2} {hop.offset:>8}  ", ""),
                (f"{ellipsize(hop.type, 26):<26} ", state_style(_type_state(hop.type))),
                (f"{by:<13} ", "dim" if hop.processedAt is None else ""),
                (after, "dim"),
            )
        )
    if not order.journey:
        lines.append(Content.styled("   no hops recorded yet", "dim"))
    return Content("\n").join(lines)


def _narrow_content(order: OrderView, prefix: str, items: str) -> Content:
    lines: list[Content] = [
        Content.assemble(
            ("order ", "dim"),
            (short_id(order.id, 13), "bold"),
            ("  ", ""),
            (ellipsize(order.customerId, 16), "bold"),
            ("  ", ""),
            (f"● {order.status}", state_style(order.status)),
            ("" if order.status in FINAL_STATUSES else " (in flight)", "dim"),
            ("  ", ""),
            (money(order.amountCents), "bold"),
        ),
        Content.assemble(("items ", "dim"), (ellipsize(items, 66), "")),
        Content.assemble(
            ("status ", "dim"),
            *[
                part
                for i, change in enumerate(order.history)
                for part in (
                    ("→" if i else "", "dim"),
                    (change.status, state_style(change.status)),
                )
            ],
        ),
        Content.styled(
            f"   {'WRITTEN':<12} {'TOPIC':<14} {'AT':<8} {'EVENT':<25} AFTER", "bold $text-muted"
        ),
    ]
    for index, hop in enumerate(order.journey):
        topic = hop.topic.removeprefix(prefix).replace("-events", "")
        if hop.processedAt is not None:
            delay_ms = hop.processedAt.timestamp() * 1000 - hop.timestamp
            after = f"{max(0.0, delay_ms):,.0f} ms"
        else:
            after = "waiting…"
        marker = "└─" if index == len(order.journey) - 1 else "├─"
        lines.append(
            Content.assemble(
                (f"{marker} ", "$accent"),
                (f"{clock_ms(hop.timestamp):<12} ", ""),
                (f"{ellipsize(topic, 14):<14} ", "bold red" if topic.endswith(".dlq") else "bold"),
                (f"{ellipsize(f'p{hop.partition}@{hop.offset}', 8):<8} ", ""),
                (f"{ellipsize(hop.type, 25):<25} ", state_style(_type_state(hop.type))),
                (after, "dim"),
            )
        )
    if not order.journey:
        lines.append(Content.styled("   no hops recorded yet", "dim"))
    return Content("\n").join(lines)


def _type_state(event_type: str) -> str:
    return {
        "OrderConfirmed": "confirmed",
        "OrderRejected": "rejected",
        "PaymentDeclined": "payment_declined",
        "OrderCancelled": "cancelled",
        "RefundRequested": "cancelled",
    }.get(event_type, "default")


class JourneyView(Static):
    """The selected order's journey (or a hint when none is selected)."""

    DEFAULT_CSS = """
    JourneyView {
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $accent;
        padding: 0 1;
        overflow-y: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.order: OrderView | None = None
        self._prefix = ""
        self._narrow: bool | None = None
        self._lines = -1

    def on_resize(self) -> None:
        narrow = self.app.size.width < WIDE_FROM
        if narrow != self._narrow and self.order is not None:
            self._narrow = narrow
            self.update(journey_content(self.order, self._prefix, narrow=narrow))

    def on_mount(self) -> None:
        self.border_title = "Journey"
        self.show(None)

    def show(self, order: OrderView | None, prefix: str = "") -> None:
        """Redraw for ``order`` (None: nothing selected)."""
        narrow = self.app.size.width < WIDE_FROM
        if order == self.order and order is not None and narrow == self._narrow:
            return
        self.order = order
        self._prefix = prefix
        self._narrow = narrow
        if order is None:
            content = Content.styled("select an order to see its journey across the topics", "dim")
        else:
            content = journey_content(order, prefix, narrow=narrow)
        # The view's height follows its lines (Orders: ``height: auto``), and a layout pass
        # re-arranges the whole screen: on j/k between orders of as many hops, skip it.
        lines = content.plain.count("\n")
        self.update(content, layout=lines != self._lines)
        self._lines = lines
