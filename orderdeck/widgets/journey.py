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
from orderdeck.widgets.formatting import clock, clock_ms, ellipsize, money, state_style

if TYPE_CHECKING:
    from orderdeck.store import OrderView


def journey_content(order: OrderView, prefix: str = "") -> Content:
    """The order's header, status history and hops as text."""
    items = ", ".join(f"{i.quantity} x {i.productId}" for i in order.items) or "-"
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

    def on_mount(self) -> None:
        self.border_title = "Journey"
        self.show(None)

    def show(self, order: OrderView | None, prefix: str = "") -> None:
        """Redraw for ``order`` (None: nothing selected)."""
        if order == self.order and order is not None:
            return
        self.order = order
        if order is None:
            self.update(
                Content.styled("select an order to see its journey across the topics", "dim")
            )
            return
        self.update(journey_content(order, prefix))
