"""Time ``status_counts`` on a PostgreSQL store of many orders, beside a full ``GROUP BY``.

    .venv/bin/python bench/status_counts.py [--orders 1000000] [--reads 20]

Starts a throwaway PostgreSQL server (the test suite's ``tests/postgres_server.py``), opens an
orderdeck store in it, inserts ``--orders`` orders in one statement (through the status-count
trigger, as the services' writes go), moves a fifth of them to ``confirmed`` and a tenth to
``cancelled``, then prints the median time of ``--reads`` calls of each way of counting: the
store's ``status_counts`` (the sums of ``order_status_deltas``, folded by the first call) and
``SELECT status, COUNT(*) FROM orders GROUP BY status`` (what it did before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's PostgreSQL server (tests/postgres_server.py)

import psycopg  # noqa: E402

from orderdeck.store import open_store  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


def timed(fn: object, reads: int) -> tuple[float, object]:
    assert callable(fn)
    times = []
    result = None
    for _ in range(reads):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args()
    server = PostgresServer()
    try:
        server.start()
        url = server.app_url
        store = open_store(url)
        try:
            began = time.perf_counter()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO orders (id, customer_id, status, placed_event_id, history,"
                    " created_at, updated_at) SELECT 'o' || n, 'c' || n, 'placed', 'e' || n,"
                    " '[]', '2026-12-02T00:00:00.000Z', '2026-12-02T00:00:00.000Z'"
                    " FROM generate_series(1, %s) AS n",
                    (args.orders,),
                )
                conn.execute(
                    "UPDATE orders SET status = CASE WHEN seq % 10 = 0 THEN 'cancelled'"
                    " ELSE 'confirmed' END WHERE seq % 5 = 0 OR seq % 10 = 0"
                )
                conn.execute("VACUUM ANALYZE orders")
                conn.execute("VACUUM ANALYZE order_status_deltas")
            loaded = time.perf_counter() - began
            began = time.perf_counter()
            first = store.status_counts()
            fold_ms = (time.perf_counter() - began) * 1000
            new_ms, counts = timed(store.status_counts, args.reads)
            with psycopg.connect(url, autocommit=True) as conn:

                def full() -> dict[str, int]:
                    rows = conn.execute(
                        "SELECT status, COUNT(*) FROM orders GROUP BY status"
                    ).fetchall()
                    return {s: int(n) for s, n in rows}

                old_ms, full_counts = timed(full, args.reads)
            assert counts == full_counts == first, (counts, full_counts, first)
        finally:
            store.close()
        print(f"{args.orders} orders loaded in {loaded:.1f} s; counts {counts}")
        print(f"first status_counts (folds the deltas): {fold_ms:.1f} ms")
        print(f"status_counts, median of {args.reads}: {new_ms:.2f} ms")
        print(f"SELECT status, COUNT(*) FROM orders GROUP BY status, median: {old_ms:.1f} ms")
    finally:
        server.stop()
        server.remove()


if __name__ == "__main__":
    main()
