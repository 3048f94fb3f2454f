"""How orderdeck reaches a Kafka cluster: its addresses, security protocol and credentials.

One :class:`KafkaConnection` describes a cluster the way librdkafka's client properties do, so
the file a user already has for ``kcat -F`` works for orderdeck too (:func:`load_properties`).
Every Kafka client orderdeck opens is built from one of these (``kafka/clients.py``), so TLS,
SASL and client ids are decided in one place.

Secrets (the SASL password, the private key's password) never appear in ``repr``, in
:meth:`KafkaConnection.describe` or in any error message: status lines name the protocol, the
mechanism and the user only.
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderdeck.errors import OrderdeckError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: The ``client.id`` prefix unless a properties file names another.
DEFAULT_CLIENT_ID = "orderdeck"
#: librdkafka's values of ``ssl.endpoint.identification.algorithm``.
_ENDPOINT_CHECKS = {"https": True, "none": False}


class KafkaConfigError(OrderdeckError):
    """A client properties file or connection setting that orderdeck cannot use."""

    exit_code = 2


@dataclass(frozen=True)
class KafkaConnection:
    """Where a Kafka cluster is and how to authenticate to it."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    #: Whether the broker's certificate must name the host connected to (librdkafka's
    #: ``ssl.endpoint.identification.algorithm=https``, its default).
    ssl_check_hostname: bool = True
    #: The ``client.id`` prefix; each client appends what it is (``-payment-0``, ``-tail``).
    client_id: str = DEFAULT_CLIENT_ID
    #: The properties file this came from, for error messages.
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if not self.bootstrap_servers.strip():
            raise KafkaConfigError(f"bootstrap.servers is empty{where}")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise KafkaConfigError(
                f"security.protocol={self.security_protocol}{where} is not supported "
                f"(use one of {', '.join(SECURITY_PROTOCOLS)})"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaConfigError(
                    f"sasl.mechanism={self.sasl_mechanism}{where} is not supported with "
                    f"{self.security_protocol} (use one of {', '.join(SASL_MECHANISMS)})"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise KafkaConfigError(
                    f"{self.security_protocol}{where} needs sasl.username and sasl.password"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password is not None:
            raise KafkaConfigError(
                f"sasl.* settings{where} need security.protocol SASL_PLAINTEXT or SASL_SSL "
                f"(it is {self.security_protocol})"
            )
        tls_paths = (self.ssl_ca_location, self.ssl_certificate_location, self.ssl_key_location)
        if not self.uses_tls and any(tls_paths):
            raise KafkaConfigError(
                f"ssl.* settings{where} need security.protocol SSL or SASL_SSL "
                f"(it is {self.security_protocol})"
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise KafkaConfigError(
                f"ssl.certificate.location and ssl.key.location{where} go together "
                "(a client certificate needs its key)"
            )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def is_plaintext(self) -> bool:
        """Neither TLS nor SASL: what orderdeck's own readiness probe can speak."""
        return self.security_protocol == "PLAINTEXT"

    def with_bootstrap(self, bootstrap_servers: str) -> KafkaConnection:
        """The same security settings for other addresses (``--bootstrap-servers`` wins)."""
        return dataclasses.replace(self, bootstrap_servers=bootstrap_servers)

    def describe(self) -> str:
        """A line for headers and status: protocol, mechanism and user, never a secret."""
        if self.uses_sasl:
            return f"{self.security_protocol} {self.sasl_mechanism} as {self.sasl_username}"
        if self.ssl_certificate_location is not None:
            return f"{self.security_protocol} with client certificate"
        return self.security_protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context that verifies the broker (and presents our certificate, if any)."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise KafkaConfigError(
                f"cannot read the CA file ssl.ca.location={self.ssl_ca_location}: {exc}"
            ) from None
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certificate_location is not None and self.ssl_key_location is not None:
            try:
                context.load_cert_chain(
                    str(self.ssl_certificate_location),
                    str(self.ssl_key_location),
                    password=self.ssl_key_password,
                )
            except (OSError, ssl.SSLError) as exc:
                raise KafkaConfigError(
                    f"cannot load the client certificate {self.ssl_certificate_location} "
                    f"with key {self.ssl_key_location}: {exc}"
                ) from None
        return context

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client takes for this connection."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


# ------------------------------------------------------------------ client properties files

#: librdkafka key -> KafkaConnection field, for the keys orderdeck understands.
_KEYS = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",  # librdkafka's older name for the same
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",  # librdkafka's historical spelling
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
    "ssl.endpoint.identification.algorithm": "ssl_check_hostname",
    "client.id": "client_id",
}
_PATH_FIELDS = {"ssl_ca_location", "ssl_certificate_location", "ssl_key_location"}


def parse_properties(text: str, source: Path | None = None) -> dict[str, str]:
    """``key=value`` lines (``#``/``!`` comments, blank lines) -> a dict, duplicates refused."""
    where = source or "the properties"
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            # The line itself is not echoed: it may be a password someone wrapped.
            raise KafkaConfigError(f"{where}:{number}: expected key=value")
        key, value = key.strip(), value.strip()
        if key in values:
            raise KafkaConfigError(f"{where}:{number}: {key} is set twice")
        values[key] = value
    return values


def connection_from_properties(
    values: dict[str, str], source: Path | None = None, bootstrap_servers: str | None = None
) -> KafkaConnection:
    """Build a connection from librdkafka-named properties; unknown keys are an error.

    Relative certificate paths are taken relative to the file's directory, as a user who keeps
    ``ca.pem`` beside ``client.properties`` would expect. ``bootstrap_servers`` overrides the
    file's ``bootstrap.servers`` (the ``--bootstrap-servers`` flag).
    """
    where = f" in {source}" if source else ""
    fields: dict[str, Any] = {"source": source}
    for key, value in values.items():
        name = _KEYS.get(key)
        if name is None:
            raise KafkaConfigError(
                f"{key}{where} is not a setting orderdeck supports "
                f"(supported: {', '.join(k for k in _KEYS if k not in _ALIASES)})"
            )
        if name in fields:
            raise KafkaConfigError(f"{key}{where} repeats a setting given under another name")
        if name == "ssl_check_hostname":
            check = _ENDPOINT_CHECKS.get(value.lower())
            if check is None:
                raise KafkaConfigError(f"{key}={value}{where}: use https or none")
            fields[name] = check
        elif name in _PATH_FIELDS:
            path = Path(value).expanduser()
            if not path.is_absolute() and source is not None:
                path = source.parent / path
            if not path.is_file():
                raise KafkaConfigError(f"{key}={value}{where}: no such file {path}")
            fields[name] = path
        elif name in ("security_protocol", "sasl_mechanism"):
            fields[name] = value.upper()
        else:
            fields[name] = value
    if bootstrap_servers:
        fields["bootstrap_servers"] = bootstrap_servers
    if "bootstrap_servers" not in fields:
        raise KafkaConfigError(f"bootstrap.servers is missing{where} (or pass --bootstrap-servers)")
    return KafkaConnection(**fields)


_ALIASES = {"metadata.broker.list", "sasl.mechanisms"}


def load_properties(path: Path, bootstrap_servers: str | None = None) -> KafkaConnection:
    """Read a ``kcat -F`` style client properties file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KafkaConfigError(f"cannot read the Kafka config {path}: {exc.strerror}") from None
    return connection_from_properties(parse_properties(text, path), path, bootstrap_servers)


def render_properties(connection: KafkaConnection) -> str:
    """The properties file for ``connection`` (with its secrets: write it mode 0600)."""
    lines = [f"bootstrap.servers={connection.bootstrap_servers}"]
    lines.append(f"security.protocol={connection.security_protocol}")
    if connection.uses_sasl:
        lines += [
            f"sasl.mechanism={connection.sasl_mechanism}",
            f"sasl.username={connection.sasl_username}",
            f"sasl.password={connection.sasl_password}",
        ]
    for key, value in (
        ("ssl.ca.location", connection.ssl_ca_location),
        ("ssl.certificate.location", connection.ssl_certificate_location),
        ("ssl.key.location", connection.ssl_key_location),
        ("ssl.key.password", connection.ssl_key_password),
    ):
        if value is not None:
            lines.append(f"{key}={value}")
    if connection.uses_tls and not connection.ssl_check_hostname:
        lines.append("ssl.endpoint.identification.algorithm=none")
    return "\n".join(lines) + "\n"
