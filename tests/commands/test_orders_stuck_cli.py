"""``orderdeck orders stuck`` reads the stuck orders from the store, on both engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orderdeck.commands.orders_stuck import format_age, parse_seconds
from orderdeck.errors import OrderdeckError
from orderdeck.store import open_store
from tests.test_store_stuck import _place


def orderdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store_text(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL as a user types it, holding an order stuck 2 min and a fresh one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'orderdeck.db'}"
    else:
        url = request.getfixturevalue("postgres_db_url")
    store = open_store(url)
    try:
        _place(store, "stuck-one", 120, 0)
        _place(store, "fresh-one", 0, 1)
    finally:
        store.close()
    return url


def test_stuck_orders_as_json_and_as_a_table(store_text: str) -> None:
    done = orderdeck("orders", "stuck", "--older-than", "1m", "--json", "--store", store_text)
    assert done.returncode == 0, done.stderr
    (only,) = json.loads(done.stdout)
    assert only["id"] == "stuck-one"
    assert only["status"] == "placed"
    assert only["lastEvent"] == "OrderPlaced"
    assert only["stuckForS"] >= 120

    done = orderdeck("orders", "stuck", "--store", store_text)  # default: 30 s
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ORDER", "STATUS", "LAST-EVENT", "STUCK-FOR", "CUSTOMER"]
    assert lines[1].split()[:3] == ["stuck-one", "placed", "OrderPlaced"]
    assert lines[1].split()[3].startswith("2m")
    assert len(lines) == 2

    done = orderdeck("orders", "stuck", "--older-than", "1h", "--store", store_text)
    assert done.stdout.strip() == "no stuck orders"


def test_a_missing_store_is_one_line_and_not_created(tmp_path: Path) -> None:
    done = orderdeck("orders", "stuck", "--data-dir", str(tmp_path / "none"))
    assert done.returncode != 0
    assert "no store at" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_durations_and_ages() -> None:
    assert parse_seconds("30s") == 30
    assert parse_seconds("5m") == 300
    assert parse_seconds("500ms") == 0.5
    assert parse_seconds("2") == 2
    with pytest.raises(OrderdeckError):
        parse_seconds("soon")
    assert format_age(42.9) == "42s"
    assert format_age(185) == "3m05s"
    assert format_age(7800) == "2h10m"
