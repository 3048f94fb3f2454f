"""The pipeline's durable state behind one interface, with one backend per database engine.

* ``tx.py`` — the interface: :class:`WriteTx` (what a service does in one transaction) and
  :class:`StoreBackend` (transactions, reads, outbox upkeep), as Protocols in domain terms.
* ``views.py`` — what reads return (orders, products, journey hops, outbox rows).
* ``schema.py`` — the schema version and the refusal of a store written by a newer version.
* ``url.py`` — ``--store URL`` (``sqlite:///path`` or ``postgresql://…``), password redacted.
* ``catalog.py`` — the product catalog a new store is seeded from.
* ``sqlite.py`` — the embedded default; the only module here that speaks SQLite's SQL.
* ``postgres.py`` — PostgreSQL (psycopg 3, psycopg_pool), for deployments across hosts.

:func:`open_store` is the one way the program opens a store from a URL. ``Store`` remains the
name of the SQLite backend's class, for the callers and tests that open a file directly.
"""

from __future__ import annotations

from pathlib import Path

from orderdeck.store.catalog import CATALOG_NAME, DEFAULT_CATALOG, catalog_for
from orderdeck.store.schema import SCHEMA_VERSION, StoreVersionError
from orderdeck.store.sqlite import (
    BUSY_TIMEOUT_MS,
    CHECKPOINT_INTERVAL_S,
    WAL_AUTOCHECKPOINT_PAGES,
    ConnectionSettings,
    SQLiteStore,
    SQLiteWriteTx,
)
from orderdeck.store.tx import ReservationOutcome, StoreBackend, WriteTx
from orderdeck.store.url import (
    StoreConfigError,
    StoreURL,
    default_store_url,
    parse_store_url,
)
from orderdeck.store.views import (
    IdempotencyRecord,
    JourneyHop,
    OrderItemView,
    OrderSummary,
    OrderTiming,
    OrderView,
    OutboxRow,
    Product,
    StatusChange,
    now_iso,
)

#: The embedded SQLite backend under its historical name: ``Store(path)`` opens a file.
Store = SQLiteStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CATALOG_NAME",
    "CHECKPOINT_INTERVAL_S",
    "DEFAULT_CATALOG",
    "SCHEMA_VERSION",
    "WAL_AUTOCHECKPOINT_PAGES",
    "ConnectionSettings",
    "IdempotencyRecord",
    "JourneyHop",
    "OrderItemView",
    "OrderSummary",
    "OrderTiming",
    "OrderView",
    "OutboxRow",
    "Product",
    "ReservationOutcome",
    "SQLiteStore",
    "SQLiteWriteTx",
    "StatusChange",
    "Store",
    "StoreBackend",
    "StoreConfigError",
    "StoreURL",
    "StoreVersionError",
    "WriteTx",
    "catalog_for",
    "default_store_url",
    "now_iso",
    "open_store",
    "parse_store_url",
]


def open_store(
    url: StoreURL | str | Path,
    *,
    catalog_path: Path | None = None,
    data_dir: Path | None = None,
) -> StoreBackend:
    """Open (creating or migrating its schema) the store at ``url``; blocking.

    ``url`` is a :class:`StoreURL`, a URL string, or a path (a SQLite file). A new store is
    seeded from ``catalog_path``, else from the ``inventory.json`` beside the SQLite file or
    in ``data_dir`` (see :func:`catalog_for`). Raises StoreConfigError for a URL that cannot
    be used, StoreVersionError for a store written by a newer orderdeck, and the backend's
    OrderdeckError (one clear line) when the database cannot be reached.
    """
    if isinstance(url, Path):
        url = StoreURL.sqlite(url)
    elif isinstance(url, str):
        url = parse_store_url(url)
    if url.scheme == "sqlite":
        assert url.path is not None
        return SQLiteStore(url.path, catalog_path)
    if catalog_path is None and data_dir is not None:
        catalog_path = catalog_for(Path(data_dir) / "orderdeck.db")
    from orderdeck.store.postgres import PostgresStore  # psycopg is loaded only when used

    return PostgresStore(url, catalog_path)
