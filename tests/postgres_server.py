"""A real PostgreSQL server for the test session, started from Debian's ``postgresql`` package.

The suite never fakes the database: :class:`PostgresServer` runs ``initdb`` into a temporary
directory and ``pg_ctl`` on a free loopback port, and :class:`PostgresCluster` is what tests get
from it (or from ``ORDERDECK_TEST_POSTGRES=URL``, an existing server): the URL of an
application role that must give its password, and fresh databases for tests that must not see
each other's rows.

PostgreSQL refuses to run as root, so under root every server command runs as the ``postgres``
user (created by the package) through ``runuser``, in a directory that user owns; the
directory is made under the system temp dir because pytest's own base temp dir is private to
root and the server could not even traverse it. The superuser and the application role both
authenticate with SCRAM over TCP; the unix socket lives inside the private directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

SERVER_USER = "postgres"
APP_ROLE = "orderdeck"
APP_DATABASE = "orderdeck"


class PostgresStartError(RuntimeError):
    """The test server did not come up; the message carries the tail of its log."""


def find_binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: Debian keeps them off the PATH."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresStartError(
        "initdb/pg_ctl not found: install Debian's postgresql package "
        "(scripts/ensure-system-deps.sh --test) or set ORDERDECK_TEST_POSTGRES=URL"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """A ``postgresql://`` URL with its parts quoted."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"
    )


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server, same credentials."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (for the tests of authentication itself)."""
    parts = urlsplit(url)
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def wait_until_accepting(url: str, timeout: float) -> None:
    """Connect until the server answers a query, or raise once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise PostgresStartError(f"PostgreSQL did not accept connections: {exc}") from exc
            time.sleep(0.1)


@dataclass(frozen=True)
class PostgresCluster:
    """What the tests see: an admin URL (may create databases) and the application's URL.

    With a server of our own the two are different roles; with ``ORDERDECK_TEST_POSTGRES`` both
    are the given URL, whose role must be allowed to create databases.
    """

    admin_url: str
    app_url: str
    #: False for an external server, whose authentication rules are not ours to assert.
    owns_server: bool

    @property
    def app_role(self) -> str:
        return urlsplit(self.app_url).username or ""

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new, empty database owned by the application role; dropped afterwards.

        ``WITH (FORCE)`` ends connections a test left open (a pool not closed after a failure),
        so one failing test cannot block the next one's clean-up.
        """
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.app_role)
                )
            )
        try:
            yield with_database(self.app_url, name)
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


class PostgresServer:
    """One throwaway PostgreSQL server: initdb, start on a free loopback port, stop, remove."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_binaries()
        self.base = Path(tempfile.mkdtemp(prefix="orderdeck-pg-"))
        self.data_dir = self.base / "data"
        self.log_file = self.base / "server.log"
        self.port = 0
        self._superuser_password = secrets.token_urlsafe(18)
        self._app_password = secrets.token_urlsafe(18)
        self._as_server_user = os.geteuid() == 0
        if self._as_server_user:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        os.chmod(self.base, 0o700)

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        if self._as_server_user:
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def _run(self, tool: str, args: Sequence[str], timeout: float) -> None:
        # cwd inside the base dir: the server user may not be able to read the caller's cwd.
        result = subprocess.run(
            self._command(tool, *args),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresStartError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )

    def _write_as_server_user(self, path: Path, text: str) -> None:
        path.write_text(text)
        os.chmod(path, 0o600)
        if self._as_server_user:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def admin_url(self) -> str:
        return make_url(SERVER_USER, self._superuser_password, "127.0.0.1", self.port, "postgres")

    @property
    def app_url(self) -> str:
        return make_url(APP_ROLE, self._app_password, "127.0.0.1", self.port, APP_DATABASE)

    def cluster(self) -> PostgresCluster:
        return PostgresCluster(admin_url=self.admin_url, app_url=self.app_url, owns_server=True)

    def init(self) -> None:
        """initdb with a SCRAM superuser; TCP on loopback only, the socket in our private dir."""
        pwfile = self.base / "superuser.pw"
        self._write_as_server_user(pwfile, self._superuser_password + "\n")
        try:
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SERVER_USER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",  # a throwaway cluster: the server itself still fsyncs
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_as_server_user(
            self.data_dir / "pg_hba.conf",
            "# written by tests/postgres_server.py: passwords over loopback TCP, nothing else\n"
            "local all all scram-sha-256\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n",
        )

    def start(self, timeout: float = 60, attempts: int = 3) -> None:
        """Start on a free port (another port if that one is taken first) and wait for it."""
        if not (self.data_dir / "PG_VERSION").exists():
            self.init()
        for attempt in range(attempts):
            self.port = free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.base}",
                    "-c shared_buffers=32MB",
                    "-c max_connections=200",
                    "-c password_encryption=scram-sha-256",
                ]
            )
            try:
                self._run(
                    "pg_ctl",
                    [
                        "start",
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        str(int(timeout)),
                    ],
                    timeout=timeout + 10,
                )
                break
            except PostgresStartError as exc:
                log = self.log_tail()
                if "Address already in use" in log and attempt < attempts - 1:
                    continue
                raise PostgresStartError(f"{exc}\n{log}") from exc
        wait_until_accepting(self.admin_url, timeout)
        self._create_app_role_and_database()

    def _create_app_role_and_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,))
            if exists.fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(APP_ROLE), sql.Literal(self._app_password)
                    )
                )
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,))
            if found.fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(APP_DATABASE), sql.Identifier(APP_ROLE)
                    )
                )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def is_running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 60) -> None:
        """``pg_ctl stop -m fast``; the postmaster is killed if it does not stop in time."""
        if self.is_running():
            pid = self.postmaster_pid()
            try:
                self._run(
                    "pg_ctl",
                    ["stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout))],
                    timeout=timeout + 10,
                )
            except (PostgresStartError, subprocess.TimeoutExpired):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
                raise
            # pg_ctl returns once the pid file is gone, a moment before the postmaster exits.
            if pid is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).wait(timeout=timeout)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
