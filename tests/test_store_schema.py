"""The schema version: created on open, migrated forward, refused when newer than ours."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orderdeck.store import SCHEMA_VERSION, Store, StoreBackend, StoreVersionError, open_store
from orderdeck.store.schema import migration_steps


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


def test_migration_steps_go_forward_and_refuse_a_newer_store() -> None:
    assert list(migration_steps(0, "x")) == list(range(1, SCHEMA_VERSION + 1))
    assert list(migration_steps(SCHEMA_VERSION, "x")) == []
    with pytest.raises(StoreVersionError, match=rf"schema version {SCHEMA_VERSION + 1}, newer"):
        migration_steps(SCHEMA_VERSION + 1, "the-place")
    with pytest.raises(StoreVersionError, match="invalid schema version"):
        migration_steps(-1, "x")


def test_a_new_store_is_at_this_version_and_opens_again(store: StoreBackend) -> None:
    again = open_store(store.url)  # a second process opening a current store changes nothing
    try:
        assert again.list_products() == store.list_products()
    finally:
        again.close()


def test_a_sqlite_store_records_its_version(tmp_path: Path) -> None:
    db = tmp_path / "orderdeck.db"
    Store(db).close()
    assert _user_version(db) == SCHEMA_VERSION


def test_a_store_from_before_versioning_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    db = tmp_path / "orderdeck.db"
    old = Store(db)
    old.set_stock("sku-dock", 5)
    old.close()
    _set_user_version(db, 0)  # what every store written before versioning says
    again = Store(db)
    try:
        assert next(p.stock for p in again.list_products() if p.id == "sku-dock") == 5
    finally:
        again.close()
    assert _user_version(db) == SCHEMA_VERSION


def test_a_store_written_by_a_newer_orderdeck_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "orderdeck.db"
    Store(db).close()
    _set_user_version(db, SCHEMA_VERSION + 1)
    before = db.read_bytes()
    with pytest.raises(StoreVersionError) as refused:
        open_store(db)
    message = str(refused.value)
    assert str(db) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "upgrade orderdeck" in message
    assert _user_version(db) == SCHEMA_VERSION + 1
    assert db.read_bytes() == before


def test_serve_refuses_a_newer_store_in_one_line(tmp_path: Path, kafka_bootstrap: str) -> None:
    db = tmp_path / "newer.db"
    Store(db).close()
    _set_user_version(db, SCHEMA_VERSION + 1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orderdeck.cli",
            "serve",
            "--no-api",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--topic-prefix",
            f"schema-{uuid.uuid4().hex[:8]}-",
            "--data-dir",
            str(tmp_path / "data"),
            "--store",
            f"sqlite:///{db}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORDERDECK_STORE": ""},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("orderdeck: error:")]
    assert errors == [
        f"orderdeck: error: the store at {db} has schema version {SCHEMA_VERSION + 1}, newer"
        f" than this orderdeck's {SCHEMA_VERSION}: it was written by a newer orderdeck;"
        " upgrade orderdeck (or point --store at another database)"
    ]
    assert "Traceback" not in done.stderr
    assert _user_version(db) == SCHEMA_VERSION + 1
