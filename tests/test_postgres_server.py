"""The test session's PostgreSQL: a real server whose role needs its password.

These prove the fixture the PostgreSQL store tests stand on: psycopg connects as the
application role over loopback TCP, a missing or wrong password is refused, fresh databases
do not see each other's rows and are gone afterwards, and a server of our own stops cleanly.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest

from tests.postgres_server import PostgresCluster, PostgresServer, with_database, with_password


def test_connects_as_the_application_role(postgres_url: str, postgres_cluster: PostgresCluster):
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row is not None
    assert row[0] == postgres_cluster.app_role
    assert row[1] == urlsplit(postgres_url).path.lstrip("/")


def test_the_role_needs_its_password(postgres_url: str, postgres_cluster: PostgresCluster):
    if not postgres_cluster.owns_server:
        pytest.skip("an external server's authentication rules are not the suite's")
    parts = urlsplit(postgres_url)
    without = f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without, connect_timeout=5)


def test_a_wrong_password_is_refused(postgres_url: str, postgres_cluster: PostgresCluster):
    if not postgres_cluster.owns_server:
        pytest.skip("an external server's authentication rules are not the suite's")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(postgres_url, "not-the-password"), connect_timeout=5)


def test_listens_on_loopback_only(postgres_cluster: PostgresCluster):
    if not postgres_cluster.owns_server:
        pytest.skip("an external server's settings are not the suite's")
    with psycopg.connect(postgres_cluster.admin_url) as conn:
        row = conn.execute("SHOW listen_addresses").fetchone()
    assert row == ("127.0.0.1",)


def test_fresh_databases_do_not_share_rows(postgres_cluster: PostgresCluster):
    with postgres_cluster.fresh_database() as first, postgres_cluster.fresh_database() as second:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE marker (id int PRIMARY KEY)")
            conn.execute("INSERT INTO marker VALUES (1)")
        with psycopg.connect(second) as conn:
            found = conn.execute("SELECT to_regclass('marker')").fetchone()
        assert found == (None,)
    name = urlsplit(first).path.lstrip("/")
    with psycopg.connect(postgres_cluster.admin_url) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left is None


def test_a_fresh_database_is_dropped_even_with_a_connection_left_open(
    postgres_cluster: PostgresCluster,
):
    with postgres_cluster.fresh_database() as url:
        forgotten = psycopg.connect(url)
    try:
        with pytest.raises(psycopg.OperationalError):
            forgotten.execute("SELECT 1")
    finally:
        forgotten.close()
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(postgres_cluster.admin_url, "postgres")) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        assert found.fetchone() is None


def test_own_server_starts_and_stops_cleanly():
    server = PostgresServer()
    try:
        server.start(timeout=90)
        pid = server.postmaster_pid()
        assert pid is not None
        assert psutil.pid_exists(pid)
        with psycopg.connect(server.app_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server.stop()
        assert not server.is_running()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.app_url, connect_timeout=2)
    finally:
        server.stop()
        server.remove()
    assert not os.path.exists(server.base)
