"""The product catalog a new store is seeded from (``inventory.json``), for every backend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderdeck.errors import OrderdeckError

CATALOG_NAME = "inventory.json"
#: The project's catalog (``data/inventory.json`` of a source checkout).
DEFAULT_CATALOG = Path(__file__).resolve().parent.parent.parent / "data" / CATALOG_NAME


@dataclass(frozen=True)
class CatalogEntry:
    """One product with its starting stock."""

    id: str
    name: str
    price_cents: int
    stock: int


def catalog_for(store_path: Path) -> Path:
    """The catalog a new store is seeded from.

    An ``inventory.json`` beside the database (or in the data dir, for a server database)
    wins, so a data dir can carry its own catalog (and run from the project's directory with
    the default ``--data-dir data``, the project's catalog is found this way however orderdeck
    was installed); else the catalog of the source checkout this module was loaded from.
    """
    beside = Path(store_path).parent / CATALOG_NAME
    return beside if beside.is_file() else DEFAULT_CATALOG


def load_catalog(catalog_path: Path, data_dir: Path) -> list[CatalogEntry]:
    """The products of ``catalog_path``; an OrderdeckError naming it if it is missing.

    Without a catalog every order would be refused as an unknown product, so a missing file
    stops the store from opening rather than seeding nothing.
    """
    try:
        data: Any = json.loads(catalog_path.read_text())
    except FileNotFoundError:
        raise OrderdeckError(
            f"no product catalog at {catalog_path}: put an {CATALOG_NAME} (the format of"
            f" the project's data/{CATALOG_NAME}) in the data dir {data_dir}"
        ) from None
    return [
        CatalogEntry(p["id"], p["name"], int(p["priceCents"]), int(p["stock"]))
        for p in data["products"]
    ]
