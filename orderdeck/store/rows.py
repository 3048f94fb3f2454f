"""The rows both backends' reads return, and how they become views.

Shared by ``sqlite.py`` and ``postgres.py`` only: the two engines select the same columns for
an order, its lines and journey, a page of summaries and an Idempotency-Key, so the column
lists and the row-to-view mapping live here once; each backend keeps its own placeholders,
ordering and decoding (SQLite stores ``history`` as JSON text, PostgreSQL as jsonb).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from orderdeck.events import iso_utc
from orderdeck.store.views import (
    IdempotencyRecord,
    JourneyHop,
    OrderItemView,
    OrderSummary,
    OrderView,
    StatusChange,
    StuckOrder,
    encode_cursor,
)

#: ``orders`` columns of :func:`order_view` (``history`` decoded by the backend).
ORDER_COLUMNS = (
    "id, customer_id, status, amount_cents, refunded_cents, created_at, updated_at, history"
)
#: ``order_items`` columns of :func:`order_view`.
ITEM_COLUMNS = "product_id, quantity, unit_price_cents"
#: ``journey`` columns of :func:`order_view`.
HOP_COLUMNS = 'event_id, type, topic, partition, "offset", timestamp_ms, service, processed_at'
#: ``orders o`` columns of :func:`summary_page`: the cursor's seq, then the summary.
SUMMARY_COLUMNS = (
    "o.seq, o.id, o.customer_id, o.status, o.amount_cents, o.refunded_cents,"
    " o.created_at, o.updated_at,"
    " (SELECT COALESCE(SUM(quantity), 0) FROM order_items i WHERE i.order_id = o.id)"
)
#: ``orders o`` columns of :func:`stuck_orders`: the order and the last event its journey has.
STUCK_COLUMNS = (
    "o.id, o.customer_id, o.status, o.created_at, o.updated_at,"
    " (SELECT j.type FROM journey j WHERE j.order_id = o.id"
    " ORDER BY j.timestamp_ms DESC, j.event_id DESC LIMIT 1)"
)
#: ``idempotency_keys`` columns of :func:`idempotency_record`.
IDEMPOTENCY_COLUMNS = "key, request_hash, order_id, response_json"


def order_view(
    row: Sequence[Any],
    history: Sequence[Sequence[Any]],
    items: Sequence[Sequence[Any]],
    hops: Sequence[Sequence[Any]],
) -> OrderView:
    """An order from its ORDER_COLUMNS row, decoded history, ITEM_COLUMNS and HOP_COLUMNS rows."""
    return OrderView(
        id=row[0],
        customerId=row[1],
        status=row[2],
        amountCents=row[3],
        refundedCents=row[4],
        createdAt=row[5],
        updatedAt=row[6],
        items=[OrderItemView(productId=a, quantity=b, unitPriceCents=c) for a, b, c in items],
        history=[StatusChange(status=s, at=a) for s, a in history],
        journey=[
            JourneyHop(
                eventId=h[0],
                type=h[1],
                topic=h[2],
                partition=h[3],
                offset=h[4],
                timestamp=h[5],
                service=h[6],
                processedAt=h[7],
            )
            for h in hops
        ],
    )


def summary_page(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[OrderSummary], str | None]:
    """A page from ``limit + 1`` SUMMARY_COLUMNS rows, and the next page's cursor (or None)."""
    page = rows[:limit]
    summaries = [
        OrderSummary(
            id=r[1],
            customerId=r[2],
            status=r[3],
            amountCents=r[4],
            refundedCents=r[5],
            createdAt=r[6],
            updatedAt=r[7],
            itemCount=r[8],
        )
        for r in page
    ]
    return summaries, encode_cursor(page[-1][0]) if len(rows) > limit else None


def idempotency_record(row: Sequence[Any] | None) -> IdempotencyRecord | None:
    """An Idempotency-Key's record from its IDEMPOTENCY_COLUMNS row, or None."""
    if row is None:
        return None
    return IdempotencyRecord(key=row[0], request_hash=row[1], order_id=row[2], response_json=row[3])


def stuck_cutoff(older_than_s: float, now: datetime) -> str:
    """The ``created_at`` before which an in-flight order counts as stuck.

    ``created_at`` is ISO-8601 text in UTC, so the comparison is done on text in the same
    shape (milliseconds), which keeps it on the ``orders_status`` index in both engines.
    """
    return iso_utc(now - timedelta(seconds=older_than_s), "milliseconds")


def stuck_orders(rows: Sequence[Sequence[Any]], now: datetime) -> list[StuckOrder]:
    """STUCK_COLUMNS rows as views, each with its age at ``now``."""
    found = []
    for order_id, customer_id, status, created_at, updated_at, last_event in rows:
        created = datetime.fromisoformat(created_at)
        found.append(
            StuckOrder(
                id=order_id,
                customerId=customer_id,
                status=status,
                lastEvent=last_event,
                createdAt=created,
                updatedAt=datetime.fromisoformat(updated_at),
                stuckForS=round((now - created).total_seconds(), 3),
            )
        )
    return found
