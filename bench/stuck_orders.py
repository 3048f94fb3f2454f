"""Time the stuck-orders reads on a store of many orders, SQLite and PostgreSQL.

    .venv/bin/python bench/stuck_orders.py [--orders 1000000] [--reads 20]

Each engine gets a fresh store with ``--orders`` orders inserted in one statement: all but
1,000 are final (``confirmed``), 500 are in flight and old (stuck), 500 in flight and new (not
yet stuck). Prints the median time of ``--reads`` calls of ``stuck_orders(30 s, limit 100)``
(what ``orderdeck orders stuck`` runs) and ``stuck_count(30 s)`` (what every ``GET /health``
runs), and checks their answers. PostgreSQL is the test suite's throwaway server
(``tests/postgres_server.py``).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's PostgreSQL server (tests/postgres_server.py)

import psycopg  # noqa: E402

from orderdeck.store import StoreBackend, open_store  # noqa: E402
from orderdeck.store.views import now_iso  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

IN_FLIGHT = 1000  # the last IN_FLIGHT orders; the first half of them are old, so stuck
OLD = "2026-01-01T00:00:00.000Z"


def timed(fn: Callable[[], Any], reads: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(reads):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def insert_sql(orders: int, now_mark: str) -> str:
    """The orders as rows n = 1..orders: final, then old in-flight, then new in-flight (whose
    ``created_at`` is the one parameter, ``now_mark``)."""
    return (
        "INSERT INTO orders (id, customer_id, status, placed_event_id, history,"
        " created_at, updated_at) SELECT 'o' || n, 'c' || n,"
        f" CASE WHEN n <= {orders - IN_FLIGHT} THEN 'confirmed' ELSE 'paid' END, 'e' || n,"
        f" '[]', CASE WHEN n <= {orders - IN_FLIGHT // 2} THEN '{OLD}' ELSE {now_mark} END,"
        f" '{OLD}'"
    )


def measure(store: StoreBackend, reads: int, orders: int) -> tuple[float, float]:
    list_ms, listed = timed(lambda: store.stuck_orders(older_than_s=30, limit=100), reads)
    count_ms, count = timed(lambda: store.stuck_count(older_than_s=30), reads)
    assert len(listed) == 100, len(listed)
    assert listed[0].id == f"o{orders - IN_FLIGHT + 1}", listed[0].id
    assert count == IN_FLIGHT // 2, count
    return list_ms, count_ms


def sqlite_run(orders: int, reads: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orderdeck.db"
        open_store(path).close()
        began = time.perf_counter()
        conn = sqlite3.connect(path)
        conn.execute(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {orders}) "
            + insert_sql(orders, "?")
            + " FROM s",
            (now_iso(),),
        )
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
        loaded = time.perf_counter() - began
        store = open_store(path)
        try:
            return (loaded, *measure(store, reads, orders))
        finally:
            store.close()


def postgres_run(orders: int, reads: int) -> tuple[float, float, float]:
    server = PostgresServer()
    try:
        server.start()
        url = server.app_url
        store = open_store(url)
        try:
            began = time.perf_counter()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    insert_sql(orders, "%s") + f" FROM generate_series(1, {orders}) AS n",
                    (now_iso(),),
                )
                conn.execute("VACUUM ANALYZE orders")
            loaded = time.perf_counter() - began
            return (loaded, *measure(store, reads, orders))
        finally:
            store.close()
    finally:
        server.stop()
        server.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    runs = {"sqlite": sqlite_run, "postgres": postgres_run}
    for engine in args.engines.split(","):
        loaded, list_ms, count_ms = runs[engine](args.orders, args.reads)
        print(
            f"{engine}: {args.orders} orders loaded in {loaded:.1f} s; median of {args.reads}:"
            f" stuck_orders(30 s, limit 100) {list_ms:.2f} ms, stuck_count(30 s) {count_ms:.2f} ms"
        )


if __name__ == "__main__":
    main()
