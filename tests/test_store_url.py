"""``--store URL``: parsing, redaction, the Settings default, and the CLI's one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orderdeck.config import Settings
from orderdeck.errors import OrderdeckError
from orderdeck.store import StoreConfigError, StoreURL, open_store, parse_store_url

SECRET = "s3cr:t@/pw"
PG = "postgresql://orders:s3cr%3At%40%2Fpw@db.example:5433/orderdeck?sslmode=require"


def test_sqlite_urls_and_plain_paths_name_a_file() -> None:
    assert parse_store_url("sqlite:///var/lib/od/orderdeck.db").path == Path(
        "/var/lib/od/orderdeck.db"
    )
    assert parse_store_url("sqlite:////abs.db").path == Path("/abs.db")
    assert parse_store_url("sqlite:relative/x.db").path == Path("relative/x.db")
    assert parse_store_url("sqlite:///./here.db").path == Path("here.db")
    assert parse_store_url("data/orderdeck.db") == StoreURL.sqlite(Path("data/orderdeck.db"))
    assert parse_store_url("/tmp/a:b.db").path == Path("/tmp/a:b.db")
    url = parse_store_url("sqlite:///tmp/x.db")
    assert url.is_sqlite
    assert str(url) == "sqlite:///tmp/x.db"
    assert parse_store_url(str(url)) == url  # what is printed parses back


def test_a_postgresql_url_is_parsed_into_its_parts() -> None:
    url = parse_store_url(PG)
    assert (url.scheme, url.host, url.port, url.user, url.database, url.query) == (
        "postgresql",
        "db.example",
        5433,
        "orders",
        "orderdeck",
        "sslmode=require",
    )
    assert url.password == SECRET
    assert parse_store_url("postgres://u@[::1]/db").host == "::1"
    assert parse_store_url("postgresql://h/db").user == ""


def test_the_password_never_shows_but_reaches_the_driver() -> None:
    url = parse_store_url(PG)
    shown = [str(url), repr(url), url.redacted(), f"{url}", str(Settings(store=url))]
    for text in shown:
        assert "s3cr" not in text, text
    assert url.redacted() == "postgresql://orders:***@db.example:5433/orderdeck?sslmode=require"
    assert parse_store_url(url.connection_url()) == url
    assert parse_store_url(url.connection_url()).password == SECRET
    assert "store" not in Settings(store=url).model_dump()  # never in a dump either
    # Equal whatever the password: a URL compares by where it points.
    assert parse_store_url(PG.replace("s3cr", "other")) == url


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty store URL"),
        ("mysql://u:s3cr@h/db", "unknown store URL scheme 'mysql'"),
        ("sqlite://host/x.db", "names no host"),
        ("sqlite:///", "names no file"),
        ("postgresql://u:s3cr@h:99999/db", "bad port"),
        ("postgresql://u:s3cr@h:port/db", "bad port"),
        ("postgresql://u:s3cr@/db", "names no host"),
        ("postgresql://u:s3cr@h", "names no database"),
    ],
)
def test_unusable_urls_are_refused_without_echoing_a_password(text: str, why: str) -> None:
    with pytest.raises(StoreConfigError, match=why) as raised:
        parse_store_url(text)
    assert "s3cr" not in str(raised.value)


def test_settings_default_to_the_data_dirs_sqlite_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.store_url == StoreURL.sqlite(tmp_path / "orderdeck.db")
    other = StoreURL.sqlite(tmp_path / "elsewhere.db")
    assert Settings(data_dir=tmp_path, store=other).store_url == other


def _unreachable_pg() -> str:
    """A postgresql URL with the secret password on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://orders:s3cr%3At%40%2Fpw@127.0.0.1:{port}/orderdeck"


def test_open_store_with_no_postgresql_server_is_one_line_without_the_password() -> None:
    url = _unreachable_pg()
    with pytest.raises(OrderdeckError, match=r"cannot reach PostgreSQL at 127\.0\.0\.1:") as raised:
        open_store(url)
    assert "'orders'" in str(raised.value)
    assert "s3cr" not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_open_store_takes_a_path_a_url_or_a_string(tmp_path: Path) -> None:
    for where in (
        tmp_path / "a.db",
        StoreURL.sqlite(tmp_path / "b.db"),
        f"sqlite:///{tmp_path}/c.db",
    ):
        store = open_store(where)
        try:
            assert store.url.is_sqlite
            assert store.list_products()
        finally:
            store.close()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["a.db", "b.db", "c.db"]


def _orderdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "launch"])
def test_the_cli_refuses_an_unusable_store_in_one_line(command: str, tmp_path: Path) -> None:
    # Before anything starts: no broker, no data dir, no traceback, no password.
    unreachable = _unreachable_pg()
    for args, env in (
        (["--store", unreachable], None),
        ([], {"ORDERDECK_STORE": unreachable}),
        (["--store", "mysql://u:s3cr@h/db"], None),
    ):
        done = _orderdeck(command, "--data-dir", str(tmp_path / "data"), *args, env=env)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith("orderdeck: error: ")
        assert "s3cr" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()
