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

import importlib
import importlib.util
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
    DB_FILE_NAME,
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
    "check_backend",
    "check_reachable",
    "default_store_url",
    "now_iso",
    "open_store",
    "parse_store_url",
]


#: The module of each server engine's backend, imported only when a store of it is opened.
SERVER_BACKENDS = {"postgresql": "orderdeck.store.postgres"}


def check_backend(url: StoreURL) -> None:
    """StoreConfigError, at once and without connecting, if ``url``'s engine has no backend
    in this orderdeck (so a command fails before it starts Kafka, not after)."""
    module = SERVER_BACKENDS.get(url.scheme)
    if module is not None and importlib.util.find_spec(module) is None:
        raise StoreConfigError(
            f"cannot open {url.redacted()}: this orderdeck has no {url.scheme} backend"
            f" ({module} is missing); use a sqlite:///path store"
        )


def check_reachable(url: StoreURL) -> None:
    """For a server engine, connect once now: a wrong password or no server is one line
    (the backend's OrderdeckError) before a command starts anything else. SQLite: nothing."""
    if url.scheme in SERVER_BACKENDS:
        check_backend(url)
        importlib.import_module(SERVER_BACKENDS[url.scheme]).check_reachable(url)


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

    A server engine's backend module provides ``open_backend(url, catalog_path=...)``.
    """
    if isinstance(url, Path):
        url = StoreURL.sqlite(url)
    elif isinstance(url, str):
        url = parse_store_url(url)
    if url.scheme == "sqlite":
        assert url.path is not None
        return SQLiteStore(url.path, catalog_path)
    check_backend(url)
    if catalog_path is None and data_dir is not None:
        catalog_path = catalog_for(Path(data_dir) / DB_FILE_NAME)
    backend = importlib.import_module(SERVER_BACKENDS[url.scheme])
    store: StoreBackend = backend.open_backend(url, catalog_path=catalog_path)
    return store
