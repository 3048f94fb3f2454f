"""The control center's plain-data parts: burst plans, rates and lag history, tail rows, logs."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from orderdeck.events import MAX_QUANTITY
from orderdeck.kafka.admin import GroupSnapshot, PartitionLag
from orderdeck.kafka.tail import TailRecord
from orderdeck.screens.burst_plan import (
    BurstMix,
    interleave,
    overdrawn_product,
    plan_burst,
    scarce_product,
)
from orderdeck.services.payment import CREDIT_LIMIT_CENTS, DECLINED_PREFIX
from orderdeck.store import Product
from orderdeck.widgets.group_panel import lag_bars
from orderdeck.widgets.live import LiveModel
from orderdeck.widgets.log_buffer import LogBuffer
from orderdeck.widgets.record_view import header_text, matches, row_text

CATALOG = [
    Product(id="sku-cable", name="Cable", priceCents=999, stock=5000, reserved=0),
    Product(id="sku-dock", name="Dock", priceCents=19999, stock=100, reserved=0),
    Product(id="sku-mat", name="Mat", priceCents=1999, stock=1000, reserved=0),
]


def test_interleave_spreads_kinds_in_proportion() -> None:
    picks = interleave(100, (80, 10, 10))
    assert Counter(picks) == {0: 80, 1: 10, 2: 10}
    assert 1 in picks[:10]  # not all declined orders at the end
    assert interleave(3, (0, 0, 0)) == [0, 0, 0]


def test_out_of_stock_orders_target_the_product_that_runs_out_soonest() -> None:
    found = scarce_product(CATALOG)
    assert found is not None
    product, quantity = found
    # Dock and mat both run out after 5 affordable orders; the dock has less stock.
    assert product.id == "sku-dock"
    assert quantity == CREDIT_LIMIT_CENTS // 19999
    assert quantity * product.priceCents <= CREDIT_LIMIT_CENTS
    assert quantity <= MAX_QUANTITY


STICKERS = Product(id="sku-stickers", name="Stickers", priceCents=299, stock=25, reserved=0)


def test_out_of_stock_orders_ask_for_more_than_the_smallest_stock() -> None:
    found = overdrawn_product([*CATALOG, STICKERS])
    assert found == (STICKERS, 26)  # one more than there is: cancelled from the first order
    # 101 docks would exceed the credit limit, so without the stickers nothing qualifies.
    assert overdrawn_product(CATALOG) is None
    plan = plan_burst(20, BurstMix(50, 25, 25), [*CATALOG, STICKERS], "x")
    for order in plan:
        if order.kind == "out-of-stock":
            assert (order.product_id, order.quantity) == ("sku-stickers", 26)
        elif order.kind == "good":
            assert order.product_id != "sku-stickers"  # good orders never drain it


def test_burst_plan_builds_each_kind_to_end_as_named() -> None:
    plan = plan_burst(20, BurstMix(50, 25, 25), CATALOG, "abc")
    kinds = Counter(p.kind for p in plan)
    assert kinds == {"good": 10, "declined": 5, "out-of-stock": 5}
    for order in plan:
        if order.kind == "declined":
            assert order.customer_id.startswith(DECLINED_PREFIX)
        else:
            assert not order.customer_id.startswith(DECLINED_PREFIX)
        if order.kind == "good":
            assert order.quantity == 1
    assert len({p.customer_id for p in plan}) == 20  # nobody nears the credit limit


def _snapshot(
    taken_at: float, ends: tuple[int, int, int], lags: tuple[int, int, int]
) -> GroupSnapshot:
    parts = tuple(
        PartitionLag("t.order-events", p, ends[p] - lags[p], ends[p], lags[p], None, None, None)
        for p in range(3)
    )
    return GroupSnapshot("t.order-events", "Stable", (), parts, sum(lags), taken_at)


def test_live_model_turns_log_ends_into_rates_and_keeps_lag_history() -> None:
    live = LiveModel(history_points=3)
    live.update([_snapshot(100.0, (10, 10, 10), (0, 0, 0))])
    assert live.topic_rate("t.order-events") is None  # one sample is no rate
    live.update([_snapshot(102.0, (20, 20, 30), (1, 2, 3))])
    assert live.topic_rate("t.order-events") == 20.0  # 40 records in 2 s
    edge = live.edge("t.order-events", "t.order-events")
    assert (edge.lag, edge.log_end) == (6, 70)
    live.update([_snapshot(102.0, (99, 99, 99), (0, 0, 0))])  # same instant: no new rate sample
    assert live.topic_rate("t.order-events") == 20.0
    live.update([_snapshot(103.0, (99, 99, 99), (0, 0, 0))])
    assert list(live.lag_history["t.order-events"]) == [6, 0, 0]


def test_lag_bars_start_at_zero_and_keep_spikes_when_squeezed() -> None:
    assert lag_bars([0, 0, 0], 5).plain == "  ▁▁▁"
    bars = lag_bars([0, 5, 10], 3).plain
    assert bars[0] == "▁"
    assert bars[2] == "█"
    assert bars[1] not in "▁█"
    squeezed = lag_bars([0] * 50 + [7] + [0] * 49, 10).plain
    assert squeezed.count("█") == 1


def _record(order: str, kind: str, offset: int = 7) -> TailRecord:
    return TailRecord("order-events", 1, offset, 1_736_942_400_123, order, kind, order, b"{}")


def test_tail_rows_line_up_with_the_header_and_filter_by_order_or_type() -> None:
    record = _record("0f1e2d3c-0000-4000-8000-000000000001", "OrderPlaced", 12345)
    row = row_text(record, 100)
    header = header_text(100)
    assert row.startswith("12:00:00.123")
    assert row.index("OrderPlaced") == header.index("TYPE")
    assert row.rstrip().endswith("0f1e2d3c-0000-4000-8000-000000000001")
    check = matches("  orderplaced ")
    assert check is not None
    assert check(record)
    by_id = matches("8000-000000000001")
    assert by_id is not None
    assert by_id(record)
    assert not by_id(_record("other", "OrderPlaced"))
    assert matches("   ") is None


def test_log_buffer_keeps_the_newest_lines_from_any_thread() -> None:
    buffer = LogBuffer(capacity=50)
    logger = logging.getLogger("orderdeck.test-log-buffer")
    logger.addHandler(buffer)
    logger.propagate = False

    def log_forty(n: int) -> None:
        for i in range(40):
            logger.warning("t%d line %d", n, i)

    try:
        threads = [threading.Thread(target=log_forty, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        logger.removeHandler(buffer)
    assert buffer.last_seq == 160
    lines = buffer.since(0)
    assert len(lines) == 50
    assert [line.seq for line in lines] == list(range(111, 161))
    assert buffer.since(155)[0].seq == 156
    assert buffer.since(160) == []
