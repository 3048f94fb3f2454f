"""docker-compose.yml: no Docker engine runs here, so check what the file promises.

It must run the official Apache Kafka image of the version orderdeck pins, as one KRaft node,
reachable from the host at localhost:9092 (loopback only), with a real readiness check; and
beside it the official PostgreSQL image for the store, on loopback too, ready when pg_isready
says so, its password from the environment and its data in a named volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from orderdeck.kafka.local import KAFKA_VERSION

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    assert set(loaded["services"]) == {"kafka", "postgres"}
    return loaded


@pytest.fixture(scope="module")
def kafka_service(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["kafka"]
    return service


@pytest.fixture(scope="module")
def postgres_service(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["postgres"]
    return service


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service["environment"]
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_uses_the_official_image_of_the_pinned_version(kafka_service: dict[str, Any]) -> None:
    repository, tag = kafka_service["image"].split(":")
    assert repository == "apache/kafka"
    assert tag == KAFKA_VERSION
    assert tag.split(".")[0] == "4"


def test_runs_one_kraft_node_without_zookeeper(kafka_service: dict[str, Any]) -> None:
    env = _env(kafka_service)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@localhost:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert len(env["CLUSTER_ID"]) == 22  # a Kafka UUID in base64


def test_is_reachable_from_the_host_at_localhost_9092_only(kafka_service: dict[str, Any]) -> None:
    env = _env(kafka_service)
    assert kafka_service["ports"] == ["127.0.0.1:9092:9092"]
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"].split(",")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://localhost:9092"


def test_single_node_defaults_match_the_local_broker(kafka_service: dict[str, Any]) -> None:
    env = _env(kafka_service)
    assert env["KAFKA_NUM_PARTITIONS"] == "3"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[key] == "1", key


def test_healthcheck_asks_the_broker_itself(kafka_service: dict[str, Any]) -> None:
    check = kafka_service["healthcheck"]
    command = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
    assert "kafka-broker-api-versions.sh" in command
    assert "localhost:9092" in command
    assert check["retries"] >= 3
    assert check["interval"].endswith("s")


def test_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], kafka_service: dict[str, Any]
) -> None:
    env = _env(kafka_service)
    (volume,) = kafka_service["volumes"]
    name, target = volume.split(":")
    assert target == env["KAFKA_LOG_DIRS"]
    assert name in compose["volumes"]


def test_postgres_uses_a_current_official_image(postgres_service: dict[str, Any]) -> None:
    repository, tag = postgres_service["image"].split(":")
    assert repository == "postgres"
    assert tag.split(".")[0] in {"16", "17"}


def test_postgres_is_reachable_from_the_host_on_loopback_only(
    postgres_service: dict[str, Any],
) -> None:
    assert postgres_service["ports"] == ["127.0.0.1:5432:5432"]


def test_postgres_password_comes_from_the_environment(postgres_service: dict[str, Any]) -> None:
    env = _env(postgres_service)
    name, default = env["POSTGRES_PASSWORD"].removeprefix("${").removesuffix("}").split(":-")
    assert name == "ORDERDECK_POSTGRES_PASSWORD"
    assert default  # a default for a local database; the file's header says so
    assert "local" in default
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    header = COMPOSE.read_text().split("services:")[0]
    assert "ORDERDECK_POSTGRES_PASSWORD" in header


def test_postgres_healthcheck_asks_the_server_itself(postgres_service: dict[str, Any]) -> None:
    env = _env(postgres_service)
    check = postgres_service["healthcheck"]
    command = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
    assert "pg_isready" in command
    assert f"--username={env['POSTGRES_USER']}" in command
    assert f"--dbname={env['POSTGRES_DB']}" in command
    assert check["retries"] >= 3
    assert check["interval"].endswith("s")


def test_postgres_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], postgres_service: dict[str, Any]
) -> None:
    (volume,) = postgres_service["volumes"]
    name, target = volume.split(":")
    assert target == "/var/lib/postgresql/data"
    assert name in compose["volumes"]


def test_the_documented_store_url_matches_the_service(postgres_service: dict[str, Any]) -> None:
    env = _env(postgres_service)
    (line,) = [line for line in COMPOSE.read_text().splitlines() if "postgresql://" in line]
    url = line.split("--store", 1)[1].strip()
    params = conninfo_to_dict(url)
    assert params["host"] == "localhost"
    assert params["port"] == "5432"
    assert params["user"] == env["POSTGRES_USER"]
    assert params["dbname"] == env["POSTGRES_DB"]
    default = env["POSTGRES_PASSWORD"].removesuffix("}").split(":-")[1]
    assert params["password"] == default
