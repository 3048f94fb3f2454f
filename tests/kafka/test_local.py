"""The local Apache Kafka: install, start, status, stop, restart, and the clear errors.

Start/stop tests run a SECOND broker (its own temp dir, its own free ports) so the session
broker other tests use stays up. That broker is started through the real command line, as a
user would, and shared by the tests of this module in file order.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderdeck.errors import KafkaUnavailableError
from orderdeck.events import TopicNames
from orderdeck.kafka import install as kafka_install
from orderdeck.kafka.connection import KafkaConnection
from orderdeck.kafka.local import (
    KAFKA_VERSION,
    PERFORMANCE_OPTS,
    BrokerExitedError,
    ClusterIdMismatchError,
    LocalKafka,
    PortInUseError,
    tool_command,
    wait_until_ready,
)
from orderdeck.kafka.topics import describe_topics
from tests.conftest import free_port, java_processes_under

CLI_TIMEOUT = 180


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``orderdeck`` in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("orderdeck: error: ")
    assert done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


# ---------------------------------------------------------------------------- install


def test_install_is_idempotent_and_quick_the_second_time() -> None:
    kafka = LocalKafka(Path("unused"))
    libs = kafka.install()
    if os.environ.get("KAFKA_HOME"):
        assert libs == Path(os.environ["KAFKA_HOME"]).absolute() / "libs"
        return
    marker = libs.parent / kafka_install.MARKER
    before = marker.stat().st_mtime_ns

    began = time.monotonic()
    again = kafka.install()

    assert again == libs
    assert time.monotonic() - began < 1.0
    assert marker.stat().st_mtime_ns == before
    assert json.loads(marker.read_text())["kafka_version"] == KAFKA_VERSION
    jars = {p.name for p in libs.glob("*.jar")}
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in jars
    assert f"kafka-tools-{KAFKA_VERSION}.jar" in jars
    assert any(name.startswith("slf4j-api-2.") for name in jars)  # so server.log is written


def test_cache_dir_honours_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ORDERDECK_KAFKA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kafka_install.cache_dir() == tmp_path / "xdg" / "orderdeck" / f"kafka-{KAFKA_VERSION}"
    monkeypatch.setenv("ORDERDECK_KAFKA_CACHE", str(tmp_path / "mine"))
    assert kafka_install.cache_dir() == tmp_path / "mine"


def test_kafka_home_is_used_instead_of_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cached = LocalKafka(tmp_path).install()
    (tmp_path / "dist" / "libs").mkdir(parents=True)
    for jar in cached.glob("kafka_2.*.jar"):
        (tmp_path / "dist" / "libs" / jar.name).symlink_to(jar)
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path / "dist"))

    assert LocalKafka(tmp_path).install() == tmp_path / "dist" / "libs"

    monkeypatch.setenv("KAFKA_HOME", str(tmp_path / "nothing-here"))
    with pytest.raises(kafka_install.KafkaInstallError, match="not a Kafka distribution"):
        LocalKafka(tmp_path).install()


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven")
def test_interrupted_install_is_redone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    cache = tmp_path / "cache"
    (cache / "libs").mkdir(parents=True)  # a copy that never got its marker
    (cache / "libs" / "kafka_2.13-half-copied.jar").write_bytes(b"")
    monkeypatch.setenv("ORDERDECK_KAFKA_CACHE", str(cache))
    assert not kafka_install.is_installed()

    libs = kafka_install.install()

    assert kafka_install.is_installed()
    assert not (libs / "kafka_2.13-half-copied.jar").exists()
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven")
def test_unreachable_maven_registry_is_one_clear_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / ".mvn").mkdir(parents=True)
    settings = tmp_path / "settings.xml"
    port = free_port()  # nothing listens there: the "registry" refuses every connection
    settings.write_text(
        "<settings><mirrors><mirror><id>down</id><mirrorOf>*</mirrorOf>"
        f"<url>http://127.0.0.1:{port}/maven2</url></mirror></mirrors></settings>"
    )
    # Maven reads extra command-line options from .mvn/maven.config beside the project.
    (cache / ".mvn" / "maven.config").write_text(
        f"-s {settings} -Dmaven.repo.local={tmp_path / 'empty-repo'}\n"
    )

    done = cli("kafka", "install", env={"ORDERDECK_KAFKA_CACHE": str(cache), "KAFKA_HOME": ""})

    assert_one_line_error(done, "Maven could not resolve Apache Kafka", "registry reachable")
    assert not kafka_install.is_installed(cache)


def test_missing_maven_is_one_clear_line(tmp_path: Path) -> None:
    env = {"ORDERDECK_KAFKA_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path)}
    done = cli("kafka", "install", env={**env, "KAFKA_HOME": ""})
    assert_one_line_error(done, "Maven (mvn) is needed")


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    LocalKafka(tmp_path).install()
    done = cli(
        "kafka",
        "start",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        env={"PATH": str(tmp_path), "JAVA_HOME": ""},
    )
    assert_one_line_error(done, "Java 17 or newer is needed", "`java` was not found")


def test_java_older_than_17_is_one_clear_line(tmp_path: Path) -> None:
    LocalKafka(tmp_path).install()
    fake = tmp_path / "jdk11" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    fake.chmod(0o755)
    done = cli(
        "kafka",
        "start",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        env={"JAVA_HOME": str(tmp_path / "jdk11")},
    )
    assert_one_line_error(done, "needs Java 17 or newer", "is Java 11")


def test_storage_of_another_cluster_is_refused(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, port=free_port())
    kafka.log_dir.mkdir(parents=True)
    (kafka.log_dir / "meta.properties").write_text("cluster.id=AAAAAAAAAAAAAAAAAAAAAA\n")
    kafka.cluster_id_path.write_text("BBBBBBBBBBBBBBBBBBBBBB\n")

    with pytest.raises(ClusterIdMismatchError, match="formatted for cluster id AAAA"):
        kafka.start()
    assert not kafka.is_running()


def test_tool_command_runs_kafkas_own_topic_tool(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    command = tool_command(
        "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", kafka_bootstrap, "--list"
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert set(topic_names.all()) <= set(done.stdout.split())


# ---------------------------------------------------------------------------- a second broker


@dataclass
class OwnBroker:
    kafka: LocalKafka
    data_dir: Path
    port: int
    first_start: subprocess.CompletedProcess[str]

    def start_cli(self) -> subprocess.CompletedProcess[str]:
        return cli("kafka", "start", "--port", str(self.port), "--data-dir", str(self.data_dir))

    def jvms(self) -> list[int]:
        return java_processes_under(self.data_dir)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    data_dir = tmp_path_factory.mktemp("own-broker")
    port = free_port()
    unstarted = subprocess.CompletedProcess[str]([], 0)
    broker = OwnBroker(LocalKafka(data_dir, port), data_dir, port, unstarted)
    broker.first_start = broker.start_cli()
    try:
        yield broker
    finally:
        broker.kafka.stop()


def test_cli_start_prints_the_bootstrap_address_last_and_creates_the_topics(
    own_broker: OwnBroker,
) -> None:
    done = own_broker.first_start
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"127.0.0.1:{own_broker.port}"
    assert "Started Apache Kafka" in done.stdout
    assert len(own_broker.jvms()) == 1
    assert own_broker.kafka.is_running()

    infos = asyncio.run(
        describe_topics(KafkaConnection(own_broker.kafka.bootstrap_servers), TopicNames().all())
    )
    assert {(i.name, i.partitions) for i in infos} == {(t, 3) for t in TopicNames().all()}

    config = (own_broker.data_dir / "kafka" / "server.properties").read_text()
    assert f"listeners=PLAINTEXT://127.0.0.1:{own_broker.port},CONTROLLER://127.0.0.1:" in config
    assert "num.partitions=3" in config
    assert (own_broker.data_dir / "kafka" / "server.log").stat().st_size > 0


@pytest.mark.skipif(
    bool(os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS")),
    reason="KAFKA_JVM_PERFORMANCE_OPTS replaces the broker's JIT options",
)
def test_plaintext_broker_jvm_runs_c1_only(own_broker: OwnBroker) -> None:
    """A plaintext broker keeps the C1-only JIT; only a secure one needs C2 (for TLS)."""
    running = own_broker.kafka.status()
    assert running is not None
    args = psutil.Process(running.pid).cmdline()
    assert all(option in args for option in PERFORMANCE_OPTS)
    assert "-XX:TieredStopAtLevel=1" in args


def test_start_when_already_running_says_so_and_succeeds(own_broker: OwnBroker) -> None:
    pid = own_broker.jvms()

    done = own_broker.start_cli()

    assert done.returncode == 0, done.stderr
    assert "already running" in done.stdout
    assert done.stdout.splitlines()[-1] == f"127.0.0.1:{own_broker.port}"
    assert own_broker.jvms() == pid


def test_status_shows_address_pid_version_and_uptime(own_broker: OwnBroker) -> None:
    done = cli("kafka", "status", "--data-dir", str(own_broker.data_dir))

    assert done.returncode == 0, done.stderr
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines())
    assert fields["bootstrap"].strip() == f"127.0.0.1:{own_broker.port}"
    assert [int(fields["pid"])] == own_broker.jvms()
    assert KAFKA_VERSION in fields["version"]
    assert fields["uptime"].strip().endswith("s")


def test_start_on_a_taken_port_fails_naming_the_port(own_broker: OwnBroker, tmp_path: Path) -> None:
    with pytest.raises(PortInUseError, match=f"port {own_broker.port} "):
        LocalKafka(tmp_path / "a", port=own_broker.port).start()

    done = cli("kafka", "start", "--port", str(own_broker.port), "--data-dir", str(tmp_path / "b"))
    assert_one_line_error(done, f"port {own_broker.port} on 127.0.0.1 is already in use")
    assert java_processes_under(tmp_path) == []


async def test_records_and_committed_offsets_survive_stop_and_start(
    own_broker: OwnBroker,
) -> None:
    kafka = own_broker.kafka
    topic = TopicNames().orders
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(300):
            await producer.send(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id="survivor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        read = 0
        while read < 100:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100 - read)
            read += sum(len(records) for records in batches.values())
        await consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        committed_before = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    assert kafka.stop() is True
    assert own_broker.jvms() == []
    assert not kafka.pid_path.exists()
    result = kafka.start()
    assert not result.already_running

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id="survivor",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        committed_after = {tp: await consumer.committed(tp) for tp in partitions}
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning()
        values: list[bytes] = []
        while len(values) < 300:
            batches = await consumer.getmany(timeout_ms=1000)
            values += [r.value for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()

    assert committed_after == committed_before
    assert sum(ends.values()) == 300
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(300))


def test_broker_that_exits_during_start_reports_its_log(own_broker: OwnBroker) -> None:
    kafka = own_broker.kafka
    kafka.stop()
    meta = kafka.log_dir / "meta.properties"
    original = meta.read_text()
    meta.write_text(original.replace("node.id=1", "node.id=7"))
    try:
        with pytest.raises(BrokerExitedError, match="Stored node id 7 doesn't match"):
            kafka.start()
    finally:
        meta.write_text(original)
    assert own_broker.jvms() == []
    assert not kafka.pid_path.exists()


def test_cli_stop_leaves_no_jvm_behind(own_broker: OwnBroker) -> None:
    if not own_broker.kafka.is_running():
        assert own_broker.start_cli().returncode == 0
    pid = own_broker.jvms()
    assert len(pid) == 1

    done = cli("kafka", "stop", "--data-dir", str(own_broker.data_dir))

    assert done.returncode == 0, done.stderr
    assert f"Stopped Kafka (pid {pid[0]})" in done.stdout
    assert own_broker.jvms() == []
    assert not Path(f"/proc/{pid[0]}").exists() or "java" not in Path(
        f"/proc/{pid[0]}/cmdline"
    ).read_text(errors="replace")
    assert not own_broker.kafka.pid_path.exists()

    status = cli("kafka", "status", "--data-dir", str(own_broker.data_dir))
    assert status.returncode == 1
    assert status.stdout.startswith("not running")
    again = cli("kafka", "stop", "--data-dir", str(own_broker.data_dir))
    assert again.returncode == 0
    assert "not running" in again.stdout


def test_stop_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, port=free_port())
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        kafka.kafka_dir.mkdir(parents=True)
        kafka.pid_path.write_text(f"{sleeper.pid}\n")  # e.g. a recycled pid

        assert kafka.status() is None
        assert kafka.stop() is False
        assert sleeper.poll() is None
        assert not kafka.pid_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_wait_until_ready_answers_for_a_live_broker_and_times_out_otherwise(
    kafka_bootstrap: str,
) -> None:
    await wait_until_ready(kafka_bootstrap, timeout=10)

    began = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match="did not answer a metadata request"):
        await wait_until_ready(f"127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - began < 5


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven")
def test_an_install_says_it_is_still_at_work_while_maven_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A first install takes a minute or more: ``orderdeck kafka install`` (and so the first
    ``make launch``) says every PROGRESS_EVERY_S that Maven is still at it."""
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setattr(kafka_install, "PROGRESS_EVERY_S", 0.2)  # Maven takes seconds here
    said: list[float] = []
    libs = kafka_install.install(tmp_path / "cache", progress=said.append)
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert said, "nothing said while Maven ran"
    assert said == sorted(said)
