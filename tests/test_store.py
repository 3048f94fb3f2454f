"""The store: catalog, read models, once-only effects, outbox, multi-process writes.

Tests that take the ``store`` or ``store_url`` fixture (tests/conftest.py) run on every
engine; the ones that open ``Store(path)`` are about the SQLite file itself (its catalog
beside it, reopening it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orderdeck.errors import OrderdeckError
from orderdeck.events import LineItem, OrderPlaced, OrderPlacedPayload, PricedLineItem
from orderdeck.store import (
    DEFAULT_CATALOG,
    Store,
    StoreBackend,
    StoreURL,
    WriteTx,
    catalog_for,
    open_store,
)
from orderdeck.store.tx import Hop


def _placed(
    order_id: str, customer: str = "c", items: list[tuple[str, int]] | None = None
) -> OrderPlaced:
    return OrderPlaced(
        orderId=order_id,
        correlationId=order_id,
        payload=OrderPlacedPayload(
            customerId=customer,
            items=[LineItem(productId=p, quantity=q) for p, q in (items or [("sku-mouse", 1)])],
        ),
    )


def _priced(items: list[tuple[str, int, int]]) -> list[PricedLineItem]:
    return [PricedLineItem(productId=p, quantity=q, unitPriceCents=c) for p, q, c in items]


def _consume(tx: WriteTx, event: OrderPlaced, offset: int) -> bool:
    return tx.consume(
        "order",
        order_id=event.orderId,
        event_id=event.eventId,
        event_type="OrderPlaced",
        topic="order-events",
        partition=0,
        offset=offset,
        timestamp_ms=1,
    )


def test_catalog_is_seeded_from_inventory_json(store: StoreBackend) -> None:
    catalog = json.loads((Path(__file__).parent.parent / "data" / "inventory.json").read_text())
    products = store.list_products()
    assert {p.id for p in products} == {p["id"] for p in catalog["products"]}
    assert len(products) >= 8
    assert all(p.reserved == 0 and p.stock > 0 and p.priceCents > 0 for p in products)


def test_a_data_dir_with_its_own_catalog_is_seeded_from_it(tmp_path: Path) -> None:
    catalog = {"products": [{"id": "sku-own", "name": "Own", "priceCents": 250, "stock": 7}]}
    (tmp_path / "inventory.json").write_text(json.dumps(catalog))
    assert catalog_for(tmp_path / "orderdeck.db") == tmp_path / "inventory.json"
    assert catalog_for(tmp_path / "elsewhere" / "orderdeck.db") == DEFAULT_CATALOG
    own = Store(tmp_path / "orderdeck.db")
    try:
        assert [(p.id, p.stock, p.priceCents) for p in own.list_products()] == [("sku-own", 7, 250)]
    finally:
        own.close()


def test_a_missing_catalog_is_an_error_naming_it(tmp_path: Path) -> None:
    # Seeding nothing would refuse every order later as an unknown product.
    missing = tmp_path / "nowhere.json"
    with pytest.raises(OrderdeckError, match=r"no product catalog at .*nowhere\.json"):
        Store(tmp_path / "orderdeck.db", catalog_path=missing)
    # Nothing was half-created: with a catalog the same database seeds normally.
    again = Store(tmp_path / "orderdeck.db")
    try:
        assert len(again.list_products()) >= 8
    finally:
        again.close()


def test_custom_catalog_and_reopen_keeps_state(tmp_path: Path) -> None:
    catalog = tmp_path / "cat.json"
    catalog.write_text(
        json.dumps({"products": [{"id": "x", "name": "X", "priceCents": 5, "stock": 7}]})
    )
    s = Store(tmp_path / "db.sqlite", catalog)
    s.set_stock("x", 3)
    s.close()
    again = Store(tmp_path / "db.sqlite", catalog)
    assert [(p.id, p.stock) for p in again.list_products()] == [("x", 3)]
    with pytest.raises(KeyError):
        again.set_stock("nope", 1)
    again.close()


def test_record_placed_is_idempotent_and_readable_at_once(store: StoreBackend) -> None:
    event = _placed("o1", items=[("sku-mouse", 2), ("sku-cable", 1)])
    store.record_placed(event, "order-events", 1, 42, 1_700_000_000_000)
    store.record_placed(event, "order-events", 1, 42, 1_700_000_000_000)
    order = store.get_order("o1")
    assert order is not None
    assert order.status == "placed"
    assert order.amountCents == 2 * 2999 + 999
    assert [(i.productId, i.quantity, i.unitPriceCents) for i in order.items] == [
        ("sku-mouse", 2, 2999),
        ("sku-cable", 1, 999),
    ]
    assert [c.status for c in order.history] == ["placed"]
    [hop] = order.journey
    assert (hop.topic, hop.partition, hop.offset, hop.service) == ("order-events", 1, 42, None)
    assert store.get_order("missing") is None


def test_service_first_then_api_keeps_one_hop_with_the_service(store: StoreBackend) -> None:
    event = _placed("o1")
    with store.write() as tx:
        assert _consume(tx, event, offset=3)
        assert not _consume(tx, event, offset=3)  # a replay is recognised
        assert tx.accept_order(event, _priced([("sku-mouse", 1, 2999)]))
    store.record_placed(event, "order-events", 0, 3, 1)
    with store.write() as tx:
        assert not _consume(tx, event, offset=3)
    order = store.get_order("o1")
    assert order is not None
    assert order.status == "pending"
    assert [(h.service, h.offset) for h in order.journey] == [("order", 3)]


def test_list_orders_pages_newest_first_and_filters(store: StoreBackend) -> None:
    for i in range(5):
        store.record_placed(_placed(f"o{i}"), "order-events", 0, i, i)
    page, cursor = store.list_orders(limit=2)
    assert [o.id for o in page] == ["o4", "o3"]
    assert cursor is not None
    page, cursor = store.list_orders(limit=2, cursor=cursor)
    assert [o.id for o in page] == ["o2", "o1"]
    page, cursor = store.list_orders(limit=2, cursor=cursor)
    assert ([o.id for o in page], cursor) == (["o0"], None)
    assert store.list_orders(status="confirmed") == ([], None)
    assert len(store.list_orders(status="placed")[0]) == 5
    assert store.status_counts() == {"placed": 5}
    with pytest.raises(ValueError, match="invalid cursor"):
        store.list_orders(cursor="garbage!")


def test_status_counts_stay_exact_as_orders_settle(store: StoreBackend) -> None:
    # status_counts keeps a tally of the orders before the oldest one in flight; each call
    # must still agree with a full count, whatever moved (here or in another connection).
    other = open_store(store.url)  # another connection: another process's writes

    def full_count() -> dict[str, int]:
        return {
            s: n
            for s in ("placed", "pending", "paid", "confirmed", "cancelled")
            if (n := len(store.list_orders(status=s, limit=500)[0]))
        }

    try:
        for i in range(6):
            store.record_placed(_placed(f"o{i}"), "order-events", 0, i, i)
        assert store.status_counts() == full_count() == {"placed": 6}
        # Later orders settle while o0 stays in flight: the tally must not freeze them early.
        with other.write() as tx:
            for i in (1, 2, 3):
                tx.set_status(f"o{i}", "confirmed")
            tx.set_status("o4", "paid")
        assert store.status_counts() == full_count() == {"placed": 2, "paid": 1, "confirmed": 3}
        with other.write() as tx:
            tx.set_status("o0", "cancelled")
            tx.set_status("o5", "confirmed")
        assert (
            store.status_counts()
            == full_count()
            == {
                "paid": 1,
                "confirmed": 4,
                "cancelled": 1,
            }
        )
        other.record_placed(_placed("o6"), "order-events", 0, 6, 6)
        with other.write() as tx:
            tx.set_status("o4", "confirmed")
            tx.set_status("o0", "pending")  # final statuses never change: refused
        assert (
            store.status_counts()
            == full_count()
            == {
                "placed": 1,
                "confirmed": 5,
                "cancelled": 1,
            }
        )
    finally:
        other.close()
    # A new Store (a restarted process) counts the same from scratch.
    fresh = open_store(store.url)
    try:
        assert fresh.status_counts() == store.status_counts()
    finally:
        fresh.close()


def test_notification_once_and_final_status_is_never_overwritten(store: StoreBackend) -> None:
    store.record_placed(_placed("o1"), "order-events", 0, 0, 0)
    with store.write() as tx:
        assert tx.notify("o1", "PaymentDeclined", "c", "declined", "e1")
        assert not tx.notify("o1", "PaymentDeclined", "c", "declined", "e2")
        assert tx.set_status("o1", "payment_declined")
        assert not tx.set_status("o1", "confirmed")
        assert not tx.set_status("o1", "paid")
    order = store.get_order("o1")
    assert order is not None
    assert order.status == "payment_declined"
    assert [c.status for c in order.history] == ["placed", "payment_declined"]


def _failing_handler(tx: WriteTx) -> None:
    with tx.savepoint():
        tx.mark_processed("payment", "e2")
        tx.add_outbox("payment", "t", b"k", b"v", [])
        raise RuntimeError("handler failed")


def test_api_first_then_service_claims_the_hop_once(store: StoreBackend) -> None:
    event = _placed("o1")
    store.record_placed(event, "order-events", 2, 9, 5)
    with store.write() as tx:
        assert _consume(tx, event, offset=9)
        assert not _consume(tx, event, offset=9)
    order = store.get_order("o1")
    assert order is not None
    [only] = order.journey
    assert (only.service, only.offset) == ("order", 9)
    assert only.processedAt is not None


def test_mark_sent_handles_ranges_and_gaps(store: StoreBackend) -> None:
    with store.write() as tx:
        rows = [tx.add_outbox("order", "t", None, str(i).encode(), []) for i in range(6)]
    store.mark_sent([rows[0].id, rows[1].id, rows[2].id, rows[4].id])
    assert [r.value for r in store.unsent_outbox("order")] == [b"3", b"5"]


def test_processed_marks_and_savepoint_rollback(store: StoreBackend) -> None:
    with store.write() as tx:
        assert tx.mark_processed("payment", "e1")
        assert not tx.mark_processed("payment", "e1")
        assert not tx.mark_processed("inventory", "e1")  # an event is settled once
        with pytest.raises(RuntimeError):
            _failing_handler(tx)
        assert tx.outbox == []
        assert tx.mark_processed("payment", "e2")  # the failed attempt left nothing behind
    assert store.unsent_outbox("payment") == []


def test_outbox_unsent_sent_and_pruned(store: StoreBackend) -> None:
    with store.write() as tx:
        a = tx.add_outbox("order", "t1", b"k", b"v1", [("h", b"\x00\xff")])
        tx.add_outbox("order", "t1", None, None, [])
        tx.add_outbox("payment", "t2", b"k", b"v3", [])
    unsent = store.unsent_outbox("order")
    assert [r.value for r in unsent] == [b"v1", None]
    assert unsent[0].headers == (("h", b"\x00\xff"),)
    assert store.unsent_outbox("order", older_than_s=60) == []  # too fresh for a sweep
    store.mark_sent([a.id])
    assert [r.value for r in store.unsent_outbox("order")] == [None]
    assert store.prune_outbox(older_than_s=0) == 1


def test_idempotency_keys(store: StoreBackend) -> None:
    assert store.idempotency_get("k") is None
    first = store.idempotency_put("k", "h1", "o1", '{"a":1}')
    second = store.idempotency_put("k", "h2", "o2", '{"a":2}')
    assert first == second
    assert (second.request_hash, second.order_id) == ("h1", "o1")
    assert store.idempotency_get("k") == first


_WRITER = """
import os, sys
from orderdeck.events import LineItem
from orderdeck.services.inventory import reserve
from orderdeck.store import open_store
store = open_store(os.environ["ORDERDECK_STORE"])
for i in range(int(sys.argv[2])):
    with store.write() as tx:
        reserve(tx, f"{sys.argv[1]}-{i}", [LineItem(productId="sku-dock", quantity=1)], "e")
store.close()
"""


def test_two_processes_reserving_concurrently_never_oversell(
    store: StoreBackend, store_url: StoreURL
) -> None:
    # The all-or-none rule of services/inventory.py, raced by two processes for 300 units.
    store.set_stock("sku-dock", 300)
    env = {**os.environ, "ORDERDECK_STORE": store_url.connection_url()}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, name, "200"], env=env)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    dock = next(p for p in store.list_products() if p.id == "sku-dock")
    assert (dock.stock, dock.reserved) == (0, 300)
    reserved = store.effect_counts()["reservations"]
    assert reserved == 400  # every request decided once: 300 reserved, 100 out of stock


def test_consume_all_claims_what_consume_would_in_one_call(store: StoreBackend) -> None:
    def hop(event: OrderPlaced, offset: int) -> Hop:
        return Hop(event.orderId, event.eventId, "OrderPlaced", "order-events", 0, offset, 1)

    placed = [_placed(f"ca{i}") for i in range(4)]
    # The API recorded ca0 (its OrderPlaced hop, unclaimed); ca1 was consumed one by one.
    store.record_placed(placed[0], "order-events", 0, 0, 1)
    with store.write() as tx:
        assert _consume(tx, placed[1], 1)
    with store.write() as tx:
        claimed = tx.consume_all("order", [hop(e, n) for n, e in enumerate(placed)])
    assert claimed == {placed[0].eventId, placed[2].eventId, placed[3].eventId}
    with store.write() as tx:  # a replay of the whole batch claims nothing
        assert tx.consume_all("order", [hop(e, n) for n, e in enumerate(placed)]) == set()
        assert tx.consume_all("order", []) == set()
    journey = store.get_order("ca0")
    assert journey is not None
    assert [(h.type, h.service) for h in journey.journey] == [("OrderPlaced", "order")]
