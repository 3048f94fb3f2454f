"""Shared fixtures: one real Apache Kafka for the whole run, and fresh topics per test.

The session starts a single local broker (one JVM, free ports, a temporary data dir) the
first time a test asks for ``kafka_bootstrap`` and stops it at the end. With
``ORDERDECK_TEST_BOOTSTRAP=host:port`` the suite uses that cluster instead. Tests isolate
themselves by name: ``topic_names`` hands each test its own prefix with the eight pipeline
topics already created (and deletes them afterwards so the broker stays small).

``store_url`` and ``store`` give a test a fresh, empty store, once per engine of
:data:`STORE_ENGINES`: a test that takes either runs against every engine.

``secure_kafka`` is a second broker, started the way ``orderdeck kafka start --secure`` starts
one (SASL_SSL, SCRAM-SHA-512, its own CA), once per session and only if a test asks for it.

``postgres_url`` is one real PostgreSQL server (``tests/postgres_server.py``: initdb into a temp
dir, pg_ctl on a free loopback port), started once per session the first time a test asks for
it and stopped at the end; ``ORDERDECK_TEST_POSTGRES=URL`` uses that server instead.
``postgres_db_url`` gives a test a database of its own, dropped afterwards.

At the very end the session checks the process table: a JVM started by any test under this
run's temporary directory and still alive fails the run (and is killed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orderdeck.events import TopicNames
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import LocalKafka, PortInUseError
from orderdeck.kafka.probe import wait_until_ready_sync
from orderdeck.kafka.topics import TopicAdmin
from orderdeck.store import StoreBackend, StoreURL, open_store, parse_store_url
from tests.postgres_server import PostgresCluster, PostgresServer, wait_until_accepting

BOOTSTRAP_ENV = "ORDERDECK_TEST_BOOTSTRAP"
POSTGRES_ENV = "ORDERDECK_TEST_POSTGRES"
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def java_processes_under(path: Path) -> list[int]:
    """Pids of live java processes whose command line mentions ``path``."""
    needle = str(path).rstrip("/").encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = cmdline.split(b"\0")
        if args and os.path.basename(args[0]).startswith(b"java") and needle in cmdline:
            found.append(int(entry.name))
    return found


def start_local_kafka(data_dir: Path, attempts: int = 3, *, secure: bool = False) -> LocalKafka:
    """Start a broker on a free port, retrying if another process grabs the port first."""
    for attempt in range(attempts):
        kafka = LocalKafka(data_dir, port=free_port(), secure=secure)
        try:
            kafka.start(timeout=120)
            return kafka
        except PortInUseError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


#: The engines the store, service and guarantee tests run against. Another engine is one
#: more name here and its branch in ``store_url`` (a fresh database on the session's server).
STORE_ENGINES = ("sqlite", "postgres")


@pytest.fixture(params=STORE_ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreURL]:
    """Where this test's fresh store lives, for each engine (the test id names it).

    ``postgres``: a database of its own on the session's server, dropped afterwards; the
    server is started only when the first such test runs.
    """
    engine = request.param
    if engine == "sqlite":
        yield StoreURL.sqlite(tmp_path / "orderdeck.db")
        return
    if engine == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        with cluster.fresh_database() as url:
            yield parse_store_url(url)
        return
    raise AssertionError(f"no store_url for the engine {engine!r}")


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[StoreBackend]:
    """The test's store, opened (schema created, catalog seeded) and closed afterwards."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="session", autouse=True)
def _no_jvm_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if any JVM started under this run's temp dir outlives the session."""
    yield
    base = tmp_path_factory.getbasetemp()
    leftovers = java_processes_under(base)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"JVMs left running after the test session: {leftovers}"


@pytest.fixture(scope="session")
def session_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka | None]:
    """The session's own broker, or None when ORDERDECK_TEST_BOOTSTRAP names a cluster."""
    if os.environ.get(BOOTSTRAP_ENV):
        yield None
        return
    kafka = start_local_kafka(tmp_path_factory.mktemp("session-kafka"))
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A secured local broker (SASL_SSL on its port), shared by the whole session.

    Always local, also with ORDERDECK_TEST_BOOTSTRAP: it tests orderdeck's own ``--secure``.
    Its client settings are ``secure_kafka.connection()`` and ``client_properties_path``.
    """
    kafka = start_local_kafka(tmp_path_factory.mktemp("secure-kafka"), secure=True)
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(session_kafka: LocalKafka | None) -> str:
    """``"127.0.0.1:PORT"`` of the broker every integration test talks to."""
    if session_kafka is not None:
        return session_kafka.bootstrap_servers
    bootstrap = os.environ[BOOTSTRAP_ENV]
    wait_until_ready_sync(bootstrap, timeout=60)
    return bootstrap


@pytest.fixture(scope="session")
def kafka_connection(kafka_bootstrap: str) -> KafkaConnection:
    """The session broker as the clients' connection (plaintext, default client ids)."""
    return KafkaConnection(kafka_bootstrap)


@pytest.fixture
def local_kafka(session_kafka: LocalKafka | None) -> Iterator[LocalKafka]:
    """The session broker as a LocalKafka, for tests that stop and start it.

    Skips when testing against an external cluster. A test that stops the broker may leave
    it stopped: it is started again (same port, same data) before the next test.
    """
    if session_kafka is None:
        pytest.skip(f"{BOOTSTRAP_ENV} names an external cluster")
    yield session_kafka
    if not session_kafka.is_running():
        session_kafka.start(timeout=120)


@pytest.fixture
def extra_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A second, private broker (own temp dir, free ports), stopped after the test.

    It costs a JVM start (a few seconds): use it only where the session broker must not be
    disturbed, e.g. to take Kafka away in the middle of a test.
    """
    kafka = start_local_kafka(tmp_path / "extra-kafka")
    try:
        yield kafka
    finally:
        kafka.stop()


class _TopicFactory:
    """One admin connection, kept open on a private event loop thread for the whole session.

    Creating eight topics then costs one CreateTopics round trip per test instead of a new
    client bootstrap, and the fixture stays synchronous so sync and async tests can share it.
    """

    def __init__(self, kafka: KafkaConnection) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="topic-factory", daemon=True
        )
        self._thread.start()
        try:
            self._admin = self._run(self._connect(kafka))
        except BaseException:
            self._shutdown()
            raise

    @staticmethod
    async def _connect(kafka: KafkaConnection) -> TopicAdmin:
        admin = TopicAdmin(kafka, client_suffix="tests")  # binds to the running loop
        await admin.start()
        return admin

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def create(self, names: TopicNames) -> None:
        self._run(self._admin.ensure(names.all(), partitions=3))

    def delete(self, names: TopicNames) -> None:
        self._run(self._admin.delete(names.all()))

    def close(self) -> None:
        try:
            self._run(self._admin.close())
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="session")
def _topic_factory(kafka_connection: KafkaConnection) -> Iterator[_TopicFactory]:
    factory = _TopicFactory(kafka_connection)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def topic_names(_topic_factory: _TopicFactory) -> Iterator[TopicNames]:
    """A fresh ``TopicNames`` whose eight topics exist with 3 partitions each."""
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:12]}.")
    _topic_factory.create(names)
    yield names
    _topic_factory.delete(names)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL: our own server, or the one ORDERDECK_TEST_POSTGRES names."""
    external = os.environ.get(POSTGRES_ENV)
    if external:
        wait_until_accepting(external, timeout=60)
        yield PostgresCluster(admin_url=external, app_url=external, owns_server=False)
        return
    server = PostgresServer()
    try:
        server.start(timeout=90)
        yield server.cluster()
    finally:
        try:
            server.stop()
        finally:
            server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """``postgresql://`` URL of the session database, as the password-authenticated app role."""
    return postgres_cluster.app_url


@pytest.fixture
def postgres_db_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database of this test's own (same role and server), dropped after the test."""
    with postgres_cluster.fresh_database() as url:
        yield url
