"""Client properties files (``kcat -F``'s format) and what a KafkaConnection lets out."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderdeck.kafka.connection import (
    KafkaConfigError,
    KafkaConnection,
    load_properties,
    render_properties,
)

SECRET = "pw-9f3c-never-print-me"


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sasl_file(tmp_path: Path, *extra: str) -> Path:
    return write(
        tmp_path / "client.properties",
        "# a managed cluster",
        "bootstrap.servers=broker-1.example:9093,broker-2.example:9093",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.username=orders-app",
        f"sasl.password={SECRET}",
        *extra,
    )


def test_a_sasl_ssl_file_gives_every_client_its_options(tmp_path: Path) -> None:
    kafka = load_properties(sasl_file(tmp_path))
    assert kafka.bootstrap_servers == "broker-1.example:9093,broker-2.example:9093"
    assert kafka.source == tmp_path / "client.properties"
    options = kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "orders-app"
    assert options["sasl_plain_password"] == SECRET
    assert options["ssl_context"] is not None
    assert options["ssl_context"].check_hostname


def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = sasl_file(tmp_path, "sasl.kerberos.service.name=kafka")
    with pytest.raises(KafkaConfigError, match=r"sasl\.kerberos\.service\.name") as raised:
        load_properties(path)
    assert str(path) in str(raised.value)


def test_a_key_set_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.properties", "bootstrap.servers=a:1", "bootstrap.servers=b:2")
    with pytest.raises(KafkaConfigError, match=r"c\.properties:2: bootstrap\.servers is set twice"):
        load_properties(path)


def test_one_setting_under_two_names_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.properties", "bootstrap.servers=a:1", "metadata.broker.list=b:2")
    with pytest.raises(KafkaConfigError, match=r"metadata\.broker\.list"):
        load_properties(path)


def test_bootstrap_servers_flag_overrides_the_file(tmp_path: Path) -> None:
    kafka = load_properties(sasl_file(tmp_path), bootstrap_servers="127.0.0.1:19093")
    assert kafka.bootstrap_servers == "127.0.0.1:19093"
    assert kafka.sasl_username == "orders-app"  # the rest of the file still applies


def test_the_flag_stands_in_for_a_missing_bootstrap_servers(tmp_path: Path) -> None:
    path = write(tmp_path / "c.properties", "security.protocol=PLAINTEXT")
    with pytest.raises(KafkaConfigError, match=r"bootstrap\.servers is missing"):
        load_properties(path)
    assert load_properties(path, "h:1").bootstrap_servers == "h:1"


def test_relative_certificate_paths_are_found_beside_the_file(tmp_path: Path) -> None:
    certs = tmp_path / "conf"
    (certs / "tls").mkdir(parents=True)
    for name in ("ca.pem", "client.pem", "client.key"):
        (certs / "tls" / name).write_text("placeholder")
    path = write(
        certs / "client.properties",
        "bootstrap.servers=h:9093",
        "security.protocol=SSL",
        "ssl.ca.location=tls/ca.pem",
        "ssl.certificate.location=tls/client.pem",
        "ssl.key.location=tls/client.key",
        "ssl.endpoint.identification.algorithm=none",
    )
    kafka = load_properties(path)
    assert kafka.ssl_ca_location == certs / "tls" / "ca.pem"
    assert kafka.ssl_certificate_location == certs / "tls" / "client.pem"
    assert kafka.ssl_key_location == certs / "tls" / "client.key"
    assert not kafka.ssl_check_hostname
    assert kafka.describe() == "SSL with client certificate"


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.properties",
        "bootstrap.servers=h:9093",
        "security.protocol=SSL",
        "ssl.ca.location=nowhere/ca.pem",
    )
    with pytest.raises(KafkaConfigError, match=r"no such file .*nowhere/ca\.pem"):
        load_properties(path)


def test_the_password_never_shows(tmp_path: Path) -> None:
    kafka = load_properties(sasl_file(tmp_path))
    assert SECRET not in repr(kafka)
    assert SECRET not in str(kafka)
    assert kafka.describe() == "SASL_SSL SCRAM-SHA-512 as orders-app"
    failures = [
        sasl_file(tmp_path, "unknown.key=1"),
        sasl_file(tmp_path, "sasl.password=again"),
        write(tmp_path / "wrapped.properties", "bootstrap.servers=h:1", f"sasl.password {SECRET}"),
        write(
            tmp_path / "mech.properties",
            "bootstrap.servers=h:1",
            "security.protocol=SASL_SSL",
            "sasl.mechanism=GSSAPI",
            "sasl.username=u",
            f"sasl.password={SECRET}",
        ),
    ]
    for path in failures:
        with pytest.raises(KafkaConfigError) as raised:
            load_properties(path)
        assert SECRET not in str(raised.value), str(raised.value)
    # Written back (for a file orderdeck creates, mode 0600), the secret is kept, of course.
    assert f"sasl.password={SECRET}" in render_properties(kafka)


@pytest.mark.parametrize(
    "lines",
    [
        ("security.protocol=SASL_SSL", "sasl.mechanism=PLAIN"),
        ("security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", "sasl.username=u"),
        ("security.protocol=SASL_SSL", "sasl.mechanism=PLAIN", "sasl.password=p"),
    ],
)
def test_sasl_without_credentials_is_refused(tmp_path: Path, lines: tuple[str, ...]) -> None:
    path = write(tmp_path / "c.properties", "bootstrap.servers=h:1", *lines)
    with pytest.raises(KafkaConfigError, match=r"needs sasl\.username and sasl\.password"):
        load_properties(path)


def test_sasl_settings_without_a_sasl_protocol_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.properties", "bootstrap.servers=h:1", "sasl.username=u")
    with pytest.raises(KafkaConfigError, match=r"need security\.protocol SASL_PLAINTEXT"):
        load_properties(path)


def test_an_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match="cannot read the Kafka config"):
        load_properties(tmp_path / "absent.properties")


def test_plaintext_defaults_are_todays() -> None:
    kafka = KafkaConnection("127.0.0.1:9092")
    assert kafka.client_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.client_id == "orderdeck"
    assert kafka.is_plaintext
    assert kafka.describe() == "PLAINTEXT"
