"""The PostgreSQL store on a real server: what only a database server can get wrong.

The behaviour every backend shares is proved by the store tests parametrised over both
engines; these cover PostgreSQL's own parts: the versioned schema and concurrent openers,
clear one-line errors for a wrong password, an unknown database or no server, row locks that
keep stock from going negative and the credit limit from being overrun by consumers in
several processes, deadlocks recognised as transient, savepoints after a failed statement,
and consecutive outbox ids while transactions interleave.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orderdeck.events import LineItem
from orderdeck.services.inventory import reserve
from orderdeck.services.payment import CREDIT_LIMIT_CENTS, charge
from orderdeck.store import SCHEMA_VERSION, StoreConfigError, StoreVersionError, open_store
from orderdeck.store.catalog import DEFAULT_CATALOG, load_catalog
from orderdeck.store.postgres import PostgresStore, StoreUnavailableError
from orderdeck.store.url import parse_store_url
from tests.postgres_server import PostgresCluster, free_port, with_database, with_password
from tests.test_store import _placed

STORE_ENV = "ORDERDECK_TEST_STORE_URL"


@pytest.fixture
def pg(postgres_db_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(parse_store_url(postgres_db_url))
    yield store
    store.close()


def _stock(store: PostgresStore, product_id: str) -> tuple[int, int]:
    product = next(p for p in store.list_products() if p.id == product_id)
    return product.stock, product.reserved


# -- schema and opening


def test_opening_creates_the_schema_at_the_current_version(pg: PostgresStore) -> None:
    assert pg.schema_version() == SCHEMA_VERSION
    catalog = load_catalog(DEFAULT_CATALOG, DEFAULT_CATALOG.parent)
    assert [p.id for p in pg.list_products()] == sorted(p.id for p in catalog)


def test_reopening_keeps_state_and_does_not_seed_again(postgres_db_url: str) -> None:
    first = PostgresStore(parse_store_url(postgres_db_url))
    first.set_stock("sku-dock", 7)
    first.close()
    again = PostgresStore(parse_store_url(postgres_db_url))
    try:
        assert _stock(again, "sku-dock") == (7, 0)
        assert again.schema_version() == SCHEMA_VERSION
    finally:
        again.close()


def test_concurrent_openers_migrate_and_seed_once(postgres_db_url: str) -> None:
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(parse_store_url(postgres_db_url)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert len(opened) == 4
        catalog = load_catalog(DEFAULT_CATALOG, DEFAULT_CATALOG.parent)
        assert len(opened[0].list_products()) == len(catalog)
    finally:
        for store in opened:
            store.close()


def test_a_store_written_by_a_newer_orderdeck_is_refused(postgres_db_url: str) -> None:
    PostgresStore(parse_store_url(postgres_db_url)).close()
    with psycopg.connect(postgres_db_url, autocommit=True) as conn:
        conn.execute("UPDATE orderdeck_schema SET version = %s", (SCHEMA_VERSION + 1,))
    password = parse_store_url(postgres_db_url).password
    assert password
    with pytest.raises(StoreVersionError, match="newer") as caught:
        PostgresStore(parse_store_url(postgres_db_url))
    assert password not in str(caught.value)
    assert "***" in str(caught.value)


def test_open_store_opens_postgresql_urls_and_writes_no_sqlite_file(
    postgres_db_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = open_store(postgres_db_url, data_dir=data_dir)
    try:
        assert isinstance(store, PostgresStore)
        store.set_stock("sku-dock", 3)
        assert _stock(store, "sku-dock") == (3, 0)
    finally:
        store.close()
    assert list(data_dir.iterdir()) == []
    assert not list(tmp_path.rglob("*.db*"))


# -- errors that must be one clear line


def test_a_wrong_password_is_a_config_error_naming_host_port_and_user(
    postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    if not postgres_cluster.owns_server:
        pytest.skip("an external server's authentication rules are not the suite's")
    url = parse_store_url(with_password(postgres_url, "wrong-secret"))
    with pytest.raises(StoreConfigError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert f"{url.host}:{url.port}" in message
    assert repr(url.user) in message
    assert "wrong-secret" not in message
    assert "\n" not in message


def test_an_unknown_database_is_a_config_error(postgres_url: str) -> None:
    url = parse_store_url(with_database(postgres_url, "no_such_database"))
    with pytest.raises(StoreConfigError, match="no_such_database"):
        PostgresStore(url)


def test_no_server_is_unavailable_naming_host_and_port() -> None:
    port = free_port()
    url = parse_store_url(f"postgresql://someone:hidden-pw@127.0.0.1:{port}/orderdeck")
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "'someone'" in message
    assert "hidden-pw" not in message
    assert "\n" not in message


# -- transactions and locking


def test_a_failed_statement_inside_a_savepoint_leaves_the_transaction_usable(
    pg: PostgresStore,
) -> None:
    pg.set_stock("sku-dock", 1)
    with pg.write() as tx:
        with pytest.raises(psycopg.errors.CheckViolation), tx.savepoint():
            tx.take_stock({"sku-dock": 2})  # the CHECK refuses negative stock
        assert reserve(tx, "o-1", [LineItem(productId="sku-dock", quantity=1)], "e1").outcome == (
            "reserved"
        )
    assert _stock(pg, "sku-dock") == (0, 1)


def test_a_deadlock_is_transient(pg: PostgresStore) -> None:
    """Two transactions locking two products in opposite orders: one is chosen to fail."""
    caught: list[BaseException] = []
    both_hold_one = threading.Barrier(2)

    def lock(first: str, second: str) -> None:
        try:
            with pg.write() as tx:
                tx.stock_for_update([first])
                both_hold_one.wait(timeout=10)
                tx.stock_for_update([second])
        except psycopg.Error as exc:
            caught.append(exc)

    threads = [
        threading.Thread(target=lock, args=("sku-dock", "sku-cable")),
        threading.Thread(target=lock, args=("sku-cable", "sku-dock")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(caught) == 1
    assert isinstance(caught[0], psycopg.errors.DeadlockDetected)
    assert pg.is_transient(caught[0])
    assert not pg.is_transient(psycopg.errors.UniqueViolation())


def test_outbox_ids_are_consecutive_per_transaction_while_transactions_interleave(
    pg: PostgresStore,
) -> None:
    with pg.write() as first, pg.write() as second:
        rows = []
        for n in range(3):
            rows.append(first.add_outbox("order", "t", b"k", f"a{n}".encode(), []))
            rows.append(second.add_outbox("order", "t", b"k", f"b{n}".encode(), [("h", b"\xff")]))
        ids_first = [r.id for r in first.outbox]
        ids_second = [r.id for r in second.outbox]
    assert ids_first == list(range(ids_first[0], ids_first[0] + 3))
    assert ids_second == list(range(ids_second[0], ids_second[0] + 3))
    assert not set(ids_first) & set(ids_second)
    unsent = pg.unsent_outbox("order")
    assert sorted(r.id for r in unsent) == sorted(ids_first + ids_second)
    assert {r.headers for r in unsent if r.value == b"b0"} == {(("h", b"\xff"),)}
    pg.mark_sent(ids_first + ids_second)
    assert pg.unsent_outbox("order") == []
    assert pg.prune_outbox(older_than_s=0) == 6


_RESERVER = """
import os, sys
from orderdeck.events import LineItem
from orderdeck.services.inventory import reserve
from orderdeck.store.postgres import PostgresStore
from orderdeck.store.url import parse_store_url

store = PostgresStore(parse_store_url(os.environ["ORDERDECK_TEST_STORE_URL"]), pool_max=2)
name, orders, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
retries = 0
for start in range(0, orders, batch):
    while True:
        try:
            with store.write() as tx:
                for i in range(start, min(start + batch, orders)):
                    # Products in both orders across the batch: deadlocks can happen, and retry.
                    items = [("sku-dock", 1), ("sku-cable", 1)]
                    if i % 2:
                        items.reverse()
                    lines = [LineItem(productId=p, quantity=q) for p, q in items]
                    reserve(tx, f"{name}-{i}", lines, f"e-{name}-{i}")
            break
        except Exception as exc:
            if not store.is_transient(exc):
                raise
            retries += 1
store.close()
print(retries)
"""


def test_inventory_consumers_in_several_processes_never_oversell(
    pg: PostgresStore, postgres_db_url: str
) -> None:
    """500 orders from four processes against a stock of 100: exactly 100 are reserved."""
    pg.set_stock("sku-dock", 100)
    cable_before = _stock(pg, "sku-cable")[0]
    env = {**os.environ, STORE_ENV: postgres_db_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVER, name, "125", "10"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b", "c", "d")
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert _stock(pg, "sku-dock") == (0, 100)
    stock, reserved = _stock(pg, "sku-cable")
    assert (stock + reserved, reserved) == (cable_before, 100)
    with psycopg.connect(postgres_db_url) as conn:
        outcomes = dict(
            conn.execute("SELECT outcome, COUNT(*) FROM reservations GROUP BY outcome").fetchall()
        )
    assert outcomes == {"reserved": 100, "out_of_stock": 400}


_CHARGER = """
import os, sys
from orderdeck.services.payment import charge
from orderdeck.store.postgres import PostgresStore
from orderdeck.store.url import parse_store_url

store = PostgresStore(parse_store_url(os.environ["ORDERDECK_TEST_STORE_URL"]), pool_max=2)
name, orders, amount = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(orders):
    with store.write() as tx:
        charge(tx, f"{name}-{i}", "big-spender", amount, f"e-{name}-{i}")
store.close()
"""


def test_concurrent_charges_of_one_customer_never_pass_the_credit_limit(
    pg: PostgresStore, postgres_db_url: str
) -> None:
    amount = CREDIT_LIMIT_CENTS // 50
    env = {**os.environ, STORE_ENV: postgres_db_url}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHARGER, name, "40", str(amount)], env=env)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    totals = pg.payment_totals()
    assert totals["charge"] == CREDIT_LIMIT_CENTS
    assert pg.effect_counts()["charges"] == 50
    assert pg.effect_counts()["declines"] == 30


def test_a_replayed_charge_in_a_concurrent_transaction_moves_no_money(pg: PostgresStore) -> None:
    """The second insert of the same order's charge waits for the first, then does nothing."""
    results: list[str] = []
    first_charged = threading.Event()

    def second() -> None:
        first_charged.wait(timeout=10)
        with pg.write() as tx:
            results.append(charge(tx, "o-1", "c", 500, "e-replay").outcome)

    thread = threading.Thread(target=second)
    thread.start()
    with pg.write() as tx:
        results.append(charge(tx, "o-1", "c", 500, "e-1").outcome)
        first_charged.set()
        thread.join(timeout=0.5)  # the second is now waiting on the uncommitted charge
        assert thread.is_alive()
    thread.join(timeout=30)
    assert results == ["charged", "duplicate"]
    assert pg.order_payments("o-1") == {"charge": 500}


def test_serve_with_a_wrong_password_exits_with_one_line_before_starting_anything(
    postgres_url: str, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    if not postgres_cluster.owns_server:
        pytest.skip("an external server's authentication rules are not the suite's")
    wrong = with_password(postgres_url, "not-the-secret")
    done = subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", "serve", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ORDERDECK_STORE": wrong},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("orderdeck: error: ")
    assert "refused the credentials" in done.stderr
    assert "not-the-secret" not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists()


# -- status counts without counting the orders table


def _orders(store: PostgresStore, n: int, prefix: str) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    for i, order_id in enumerate(ids):
        store.record_placed(_placed(order_id), "order-events", 0, i, i)
    return ids


def _delta_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM order_status_deltas").fetchone()
    assert row is not None
    return int(row[0])


def test_status_counts_fold_their_deltas_and_stay_exact(
    pg: PostgresStore, postgres_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orderdeck.store.postgres.STATUS_DELTAS_FOLD_AT", 5)
    ids = _orders(pg, 8, "f")
    assert pg.status_counts() == {"placed": 8}  # 8 rows: this read folds them
    assert _delta_rows(postgres_db_url) == 0  # all in order_status_totals
    with pg.write() as tx:
        for order_id in ids[:3]:
            tx.set_status(order_id, "confirmed")
        tx.set_status(ids[3], "cancelled")
    assert pg.status_counts() == {"placed": 4, "confirmed": 3, "cancelled": 1}
    assert pg.status_counts() == {"placed": 4, "confirmed": 3, "cancelled": 1}
    assert _delta_rows(postgres_db_url) == 0  # 8 more rows: folded again


def test_a_version_1_store_gets_its_status_counts_from_the_orders_it_has(
    postgres_db_url: str,
) -> None:
    first = PostgresStore(parse_store_url(postgres_db_url))
    try:
        ids = _orders(first, 4, "m")
        with first.write() as tx:
            tx.set_status(ids[0], "confirmed")
    finally:
        first.close()
    with psycopg.connect(postgres_db_url, autocommit=True) as conn:  # back to version 1
        conn.execute("DROP TRIGGER orders_count_status ON orders")
        conn.execute("DROP FUNCTION orderdeck_count_status()")
        conn.execute("DROP TABLE order_status_deltas")
        conn.execute("UPDATE orderdeck_schema SET version = 1")
    again = PostgresStore(parse_store_url(postgres_db_url))
    try:
        assert again.schema_version() == SCHEMA_VERSION
        assert again.status_counts() == {"placed": 3, "confirmed": 1}
        with again.write() as tx:
            tx.set_status(ids[1], "paid")
        assert again.status_counts() == {"placed": 2, "paid": 1, "confirmed": 1}
    finally:
        again.close()
