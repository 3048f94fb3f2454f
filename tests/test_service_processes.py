"""How ``serve --processes`` shares the pipeline between its child processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderdeck.kafka.connection import KafkaConfigError, KafkaConnection, load_properties
from orderdeck.service_processes import ServiceProcesses, kafka_arguments, split_services
from orderdeck.store import parse_store_url

PIPELINE = ("order", "payment", "inventory", "notification")


@pytest.mark.parametrize(
    ("children", "shares"),
    [
        (1, [PIPELINE]),
        (2, [("order", "payment"), ("inventory", "notification")]),
        (3, [("order", "payment"), ("inventory",), ("notification",)]),
        (4, [("order",), ("payment",), ("inventory",), ("notification",)]),
        (9, [("order",), ("payment",), ("inventory",), ("notification",)]),
    ],
)
def test_shares_are_contiguous_and_even(children: int, shares: list[tuple[str, ...]]) -> None:
    assert split_services(PIPELINE, children) == shares


def test_a_subset_is_shared_too() -> None:
    assert split_services(("payment", "notification"), 3) == [("payment",), ("notification",)]


def test_children_get_the_properties_file_never_its_secrets(tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text(
        "bootstrap.servers=broker.example:9093\nsecurity.protocol=SASL_SSL\n"
        "sasl.mechanism=PLAIN\nsasl.username=orders\nsasl.password=hunter2-secret\n"
    )
    kafka = load_properties(config, bootstrap_servers="127.0.0.1:19093")
    children = ServiceProcesses([("order",)], kafka=kafka, data_dir=tmp_path)
    command = children.command(("order",))
    assert "hunter2-secret" not in " ".join(command)
    assert command[command.index("--kafka-config") + 1] == str(config)
    assert command[command.index("--bootstrap-servers") + 1] == "127.0.0.1:19093"


def test_a_plaintext_connection_is_passed_as_its_address() -> None:
    assert kafka_arguments(KafkaConnection("127.0.0.1:9092")) == [
        "--bootstrap-servers",
        "127.0.0.1:9092",
    ]


def test_credentials_without_a_file_are_not_put_on_a_command_line() -> None:
    kafka = KafkaConnection(
        "h:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
        sasl_username="u", sasl_password="hunter2-secret",
    )  # fmt: skip
    with pytest.raises(KafkaConfigError, match="needs a client properties file") as raised:
        kafka_arguments(kafka)
    assert "hunter2-secret" not in str(raised.value)


def test_children_get_the_store_in_their_environment_never_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = parse_store_url("postgresql://orders:hunter2-secret@db.example:5432/orderdeck")
    kafka = KafkaConnection("127.0.0.1:9092")
    children = ServiceProcesses([("order",)], kafka=kafka, data_dir=tmp_path, store=url)
    assert "hunter2-secret" not in " ".join(children.command(("order",)))
    assert "--store" not in children.command(("order",))
    assert parse_store_url(children.environment()["ORDERDECK_STORE"]).password == "hunter2-secret"
    # Without a --store of its own the parent's children use the data dir's, as it does.
    monkeypatch.setenv("ORDERDECK_STORE", "sqlite:///somewhere/else.db")
    default = ServiceProcesses([("order",)], kafka=kafka, data_dir=tmp_path)
    assert "ORDERDECK_STORE" not in default.environment()
