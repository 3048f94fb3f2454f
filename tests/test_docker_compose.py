"""docker-compose.yml: no Docker engine runs here, so check what the file promises.

It must run the official Apache Kafka image of the version orderdeck pins, as one KRaft node,
reachable from the host at localhost:9092 (loopback only), with a real readiness check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orderdeck.kafka.local import KAFKA_VERSION

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def kafka_service() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"kafka"}
    service: dict[str, Any] = compose["services"]["kafka"]
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


def test_keeps_its_data_in_a_named_volume(kafka_service: dict[str, Any]) -> None:
    env = _env(kafka_service)
    (volume,) = kafka_service["volumes"]
    name, target = volume.split(":")
    assert target == env["KAFKA_LOG_DIRS"]
    compose = yaml.safe_load(COMPOSE.read_text())
    assert name in compose["volumes"]
