"""``orderdeck kafka start --secure``: a SASL_SSL local broker, and the clear connection errors.

Every test here talks to the session's secured broker (``secure_kafka``, started once, real
TLS and SCRAM). The error tests time themselves: the issue promises one line within 15 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from aiokafka.admin import NewTopic

from orderdeck.kafka.clients import check_connection, new_admin, new_consumer, new_producer
from orderdeck.kafka.connect_errors import CHECK_TIMEOUT, KafkaAuthenticationError, KafkaTlsError
from orderdeck.kafka.connection import KafkaConnection, load_properties
from orderdeck.kafka.local import (
    PERFORMANCE_OPTS,
    SCRAM_MECHANISM,
    SCRAM_USER,
    SECURE_PERFORMANCE_OPTS,
    LocalKafka,
    LocalKafkaError,
)
from orderdeck.kafka.probe import ProbeError, probe
from orderdeck.kafka.tls import ensure_certificates

#: librdkafka before 2.6.1 repeats the client nonce in SCRAM's final message, which Kafka 4
#: rejects as invalid credentials (confluentinc/librdkafka#4895).
_SCRAM_FIXED_LIBRDKAFKA = (2, 6, 1)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderdeck.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def password_of(kafka: LocalKafka) -> str:
    password = kafka.connection().sasl_password
    assert password
    return password


async def create_topic(kafka: KafkaConnection, name: str) -> None:
    admin = new_admin(kafka, client_suffix="tests")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def expect_failure(kafka: KafkaConnection, error: type[Exception]) -> str:
    began = time.monotonic()
    with pytest.raises(error) as caught:
        await check_connection(kafka)
    assert time.monotonic() - began < CHECK_TIMEOUT
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- the broker


@pytest.mark.skipif(
    bool(os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS")),
    reason="KAFKA_JVM_PERFORMANCE_OPTS replaces the broker's JIT options",
)
def test_secure_broker_jvm_keeps_c2_for_tls(secure_kafka: LocalKafka) -> None:
    """The SASL_SSL broker must not run C1 alone: only C2 compiles AES-GCM to AES-NI/GHASH."""
    running = secure_kafka.status()
    assert running is not None
    args = psutil.Process(running.pid).cmdline()
    assert secure_kafka.performance_opts == SECURE_PERFORMANCE_OPTS
    assert all(option in args for option in SECURE_PERFORMANCE_OPTS)
    assert not any(arg.startswith("-XX:TieredStopAtLevel") for arg in args)
    assert "-XX:TieredStopAtLevel=1" in PERFORMANCE_OPTS  # the plaintext broker's, unchanged


def test_secure_broker_writes_private_files_with_librdkafka_names(
    secure_kafka: LocalKafka,
) -> None:
    kafka_dir = secure_kafka.kafka_dir
    private = [
        kafka_dir / "client.properties",
        kafka_dir / "server.properties",
        kafka_dir / "tls" / "ca-key.pem",
        kafka_dir / "tls" / "broker.pem",
    ]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((kafka_dir / "tls").stat().st_mode) == 0o700

    keys = {
        line.split("=", 1)[0]
        for line in secure_kafka.client_properties_path.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert keys == {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
    }
    connection = load_properties(secure_kafka.client_properties_path)
    assert connection.bootstrap_servers == secure_kafka.bootstrap_servers
    assert (connection.security_protocol, connection.sasl_mechanism) == (
        "SASL_SSL",
        SCRAM_MECHANISM,
    )
    assert connection.sasl_username == SCRAM_USER
    assert connection.ssl_ca_location == kafka_dir / "tls" / "ca.pem"

    config = (kafka_dir / "server.properties").read_text()
    port = secure_kafka.port
    assert f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:" in config
    assert "PLAINTEXT://" not in config.split("listeners=", 1)[1].split("\n", 1)[0]
    password = password_of(secure_kafka)
    for log in ("server.log", "kafka.out", "broker.json"):
        assert password not in (kafka_dir / log).read_text(), log


def test_status_shows_the_security_protocol_and_no_password(secure_kafka: LocalKafka) -> None:
    done = run_cli("kafka", "status", "--data-dir", str(secure_kafka.data_dir))

    assert done.returncode == 0, done.stderr
    assert re.search(r"^security:\s+SASL_SSL SCRAM-SHA-512 as orderdeck", done.stdout, re.M)
    assert password_of(secure_kafka) not in done.stdout + done.stderr


def test_a_secure_data_dir_stays_secure_without_the_flag(secure_kafka: LocalKafka) -> None:
    again = LocalKafka(secure_kafka.data_dir, port=secure_kafka.port)

    result = again.start(timeout=60)

    assert result.already_running
    assert again.secure
    assert again.connection().describe() == f"SASL_SSL {SCRAM_MECHANISM} as {SCRAM_USER}"


def test_secure_is_refused_for_a_data_dir_set_up_plaintext(local_kafka: LocalKafka) -> None:
    secured = LocalKafka(local_kafka.data_dir, port=local_kafka.port, secure=True)

    with pytest.raises(LocalKafkaError, match="set up without --secure") as caught:
        secured.start(timeout=60)

    assert str(local_kafka.kafka_dir) in str(caught.value)
    assert not secured.client_properties_path.exists()
    assert local_kafka.is_running()


def test_kcat_reads_client_properties_and_lists_the_topics(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    command, env = _kcat(tmp_path)
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(secure_kafka.connection(), topic))

    done = subprocess.run(
        [*command, "-F", str(secure_kafka.client_properties_path), "-L", "-m", "15"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )

    assert done.returncode == 0, done.stderr
    assert f'topic "{topic}"' in done.stdout
    assert "sasl_ssl://127.0.0.1" in done.stdout


def _kcat(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """kcat, and the environment that gives it a librdkafka able to do SCRAM with Kafka 4."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    said = subprocess.run([kcat, "-V"], capture_output=True, text=True, timeout=30, check=False)
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", said.stdout + said.stderr)
    version = tuple(int(part) for part in found.groups()) if found else (0, 0, 0)
    if version >= _SCRAM_FIXED_LIBRDKAFKA:
        return [kcat], {}
    # An older system librdkafka (Debian bookworm has 2.0.2): run the same kcat on the
    # librdkafka that confluent-kafka, a test dependency, ships (same soname, stable ABI).
    import confluent_kafka

    bundled = sorted(
        Path(confluent_kafka.__file__).parents[1].glob("confluent_kafka.libs/librdkafka*")
    )
    if not bundled:
        pytest.skip(
            f"kcat's librdkafka {version} cannot do SCRAM with Kafka 4 and none newer found"
        )
    libs = tmp_path / "librdkafka"
    libs.mkdir()
    (libs / "librdkafka.so.1").symlink_to(bundled[0])
    return [kcat], {"LD_LIBRARY_PATH": str(libs)}


# ---------------------------------------------------------------------------- clear errors


async def test_the_right_settings_connect(secure_kafka: LocalKafka) -> None:
    answer = await check_connection(secure_kafka.connection())

    assert answer.ready
    assert answer.brokers[0][1:] == ("127.0.0.1", secure_kafka.port)


async def test_plaintext_on_the_secure_port_is_refused_saying_it_needs_tls(
    secure_kafka: LocalKafka,
) -> None:
    message = await expect_failure(KafkaConnection(secure_kafka.bootstrap_servers), KafkaTlsError)

    assert message == (
        f"the broker at {secure_kafka.bootstrap_servers} seems to need TLS: it answers with a "
        "TLS handshake, but security.protocol is PLAINTEXT; use SSL or SASL_SSL with "
        "ssl.ca.location in a --kafka-config file"
    )
    with pytest.raises(ProbeError, match="TLS alert: the broker seems to need TLS"):
        probe("127.0.0.1", secure_kafka.port)


async def test_a_wrong_password_says_authentication_failed_for_user_and_mechanism(
    secure_kafka: LocalKafka,
) -> None:
    wrong = dataclasses.replace(secure_kafka.connection(), sasl_password="not-the-password")

    message = await expect_failure(wrong, KafkaAuthenticationError)

    assert message.startswith(
        f"authentication failed for user 'orderdeck' with SCRAM-SHA-512 at "
        f"{secure_kafka.bootstrap_servers}"
    )
    assert str(secure_kafka.client_properties_path) in message
    assert "not-the-password" not in message


async def test_a_certificate_from_another_ca_names_the_ca_file_and_host(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    other_ca = ensure_certificates(tmp_path / "other-tls").ca_path
    for host in ("127.0.0.1", "localhost"):
        wrong = dataclasses.replace(
            secure_kafka.connection(),
            bootstrap_servers=f"{host}:{secure_kafka.port}",
            ssl_ca_location=other_ca,
        )

        message = await expect_failure(wrong, KafkaTlsError)

        assert message.startswith(
            f"the certificate of the broker at {host}:{secure_kafka.port} does not verify "
            f"against the CA file {other_ca} for host {host} ("
        )


async def test_the_broker_certificate_names_localhost_and_127_0_0_1(
    secure_kafka: LocalKafka,
) -> None:
    for host in ("127.0.0.1", "localhost"):
        connection = secure_kafka.connection().with_bootstrap(f"{host}:{secure_kafka.port}")
        assert (await check_connection(connection)).ready


# ---------------------------------------------------------------------------- through the CLI


def bad_password_file(secure_kafka: LocalKafka, tmp_path: Path) -> Path:
    text = secure_kafka.client_properties_path.read_text()
    wrong = re.sub(r"^sasl\.password=.*$", "sasl.password=wrong-one", text, flags=re.M)
    path = tmp_path / "bad.properties"
    path.write_text(wrong)
    return path


def assert_one_line_within_15_s(
    done: subprocess.CompletedProcess[str], began: float, *fragments: str
) -> None:
    assert time.monotonic() - began < CHECK_TIMEOUT + 5  # the CLI's own start-up on top
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


@pytest.mark.parametrize("command", [["groups"], ["tail", "order-events", "--exit-at-end"]])
def test_a_wrong_password_file_is_one_line_and_a_non_zero_exit(
    secure_kafka: LocalKafka, tmp_path: Path, command: list[str]
) -> None:
    config = bad_password_file(secure_kafka, tmp_path)
    began = time.monotonic()

    done = run_cli(*command, "--kafka-config", str(config))

    assert_one_line_within_15_s(
        done,
        began,
        "authentication failed for user 'orderdeck' with SCRAM-SHA-512",
        str(config),
    )
    assert "wrong-one" not in done.stderr


def test_a_plaintext_command_on_the_secure_port_says_it_needs_tls(
    secure_kafka: LocalKafka,
) -> None:
    began = time.monotonic()

    done = run_cli("groups", "--bootstrap-servers", secure_kafka.bootstrap_servers)

    assert_one_line_within_15_s(done, began, "seems to need TLS")


def test_commands_use_the_secure_data_dirs_client_properties_by_themselves(
    secure_kafka: LocalKafka,
) -> None:
    data_dir = str(secure_kafka.data_dir)
    start = run_cli("kafka", "start", "--data-dir", data_dir, "--port", str(secure_kafka.port))
    assert start.returncode == 0, start.stderr
    assert "set up with --secure: starting it secure (SASL_SSL)" in start.stdout
    assert start.stdout.splitlines()[-1] == secure_kafka.bootstrap_servers

    topics = run_cli("kafka", "topics", "--data-dir", data_dir)
    assert topics.returncode == 0, topics.stderr
    assert re.search(r"^order-events\s+3\s", topics.stdout, re.M)

    groups = run_cli("groups", "--json", "--window", "0", "--data-dir", data_dir)
    assert groups.returncode == 0, groups.stderr
    password = password_of(secure_kafka)
    for done in (start, topics, groups):
        assert password not in done.stdout + done.stderr


async def test_produce_and_consume_over_sasl_ssl_through_the_client_factory(
    secure_kafka: LocalKafka,
) -> None:
    kafka = secure_kafka.connection()
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic)
    producer = new_producer(kafka, client_suffix="test", acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, f"m{i}".encode()) for i in range(5)]
    finally:
        await producer.stop()
    assert [meta.offset for meta in sent] == [0, 1, 2, 3, 4]

    consumer = new_consumer(kafka, topic, client_suffix="test", auto_offset_reset="earliest")
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < 5 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [r.value for records in batches.values() for r in records if r.value]
    finally:
        await consumer.stop()
    assert values == [f"m{i}".encode() for i in range(5)]
