"""Why a Kafka connection failed, in one line.

aiokafka's clients retry a failed bootstrap until their request timeout and then report
``Unable to bootstrap from [...]``: the real cause (a wrong password, a certificate that does
not verify, a plaintext client on a TLS port) only reaches its log. So before a command or the
runtime starts its first client, ``clients.check_connection`` opens one connection itself, the
way a client's bootstrap does (TLS, ApiVersions, SASL, Metadata), under a deadline, and
:func:`explain` here turns whatever went wrong into an :class:`~orderdeck.errors.OrderdeckError`
whose message names the user and mechanism, the CA file and host, or the missing TLS, and
never a secret.

A plaintext client on a TLS listener is the one case aiokafka cannot tell apart from a broken
network (the broker's TLS engine just drops the unexpected bytes), so then a second, bare TLS
handshake with the port decides it: a port that completes one speaks TLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka.connection import KafkaConnection

#: How long a check may take by default: the issue's promise of a clear answer within 15 s.
CHECK_TIMEOUT = 15.0
TLS_SNIFF_TIMEOUT = 3.0


class KafkaConnectError(KafkaUnavailableError):
    """orderdeck reached (or tried to reach) Kafka and could not use the connection."""


class KafkaAuthenticationError(KafkaConnectError):
    """The broker refused the SASL user name or password."""


class KafkaTlsError(KafkaConnectError):
    """TLS did not work out: the certificate, or TLS on one side only."""


#: Failures that waiting longer cannot cure: a readiness wait reports them at once.
FINAL_ERRORS = (KafkaAuthenticationError, KafkaTlsError)


def explain(
    exc: BaseException,
    kafka: KafkaConnection,
    address: tuple[str, int] | None = None,
    *,
    port_speaks_tls: bool | None = None,
    waited: float | None = None,
) -> OrderdeckError:
    """The one-line error for a failed connection to ``kafka`` (never containing a secret).

    ``port_speaks_tls`` is what a bare TLS handshake with the port found, when the caller
    tried one (see :func:`port_speaks_tls`); ``waited`` how long the caller allowed.
    """
    if isinstance(exc, OrderdeckError):
        return exc
    where = f"{address[0]}:{address[1]}" if address else kafka.bootstrap_servers
    host = address[0] if address else where.rsplit(":", 1)[0]
    config = f" in {kafka.source}" if kafka.source else ""
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaAuthenticationError(
            f"authentication failed for user {kafka.sasl_username!r} with "
            f"{kafka.sasl_mechanism} at {where}: check sasl.username and sasl.password{config}"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return KafkaAuthenticationError(
            f"the broker at {where} does not offer SASL mechanism {kafka.sasl_mechanism} "
            f"({_offered(exc)}); set sasl.mechanism{config} to one it offers"
        )
    if isinstance(exc, IllegalSaslStateError):
        return KafkaAuthenticationError(
            f"the broker at {where} does not expect SASL on that port; "
            f"check security.protocol{config} (it is {kafka.security_protocol})"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = (
            f"the CA file {kafka.ssl_ca_location}"
            if kafka.ssl_ca_location
            else ("the system's trusted CAs (no ssl.ca.location set)")
        )
        reason = exc.verify_message or exc.reason or "verification failed"
        return KafkaTlsError(
            f"the certificate of the broker at {where} does not verify against {trusted} "
            f"for host {host} ({reason})"
        )
    if kafka.uses_tls and isinstance(exc, ssl.SSLError | ConnectionResetError | EOFError):
        return KafkaTlsError(
            f"the TLS handshake with {where} failed ({_ssl_reason(exc)}): the port does not "
            f"seem to speak TLS; check security.protocol{config} "
            f"(it is {kafka.security_protocol})"
        )
    if port_speaks_tls:
        return KafkaTlsError(
            f"the broker at {where} seems to need TLS: it answers with a TLS handshake, but "
            f"security.protocol is {kafka.security_protocol}; use SSL or SASL_SSL with "
            "ssl.ca.location in a --kafka-config file"
        )
    if isinstance(exc, ConnectionRefusedError):
        return KafkaConnectError(f"cannot reach Kafka at {where}: connection refused")
    if isinstance(exc, TimeoutError):
        within = f" within {waited:g} s" if waited else " in time"
        return KafkaConnectError(f"Kafka at {where} did not answer{within}")
    if isinstance(exc, OSError):
        return KafkaConnectError(f"cannot reach Kafka at {where}: {exc.strerror or exc}")
    if isinstance(exc, KafkaError | asyncio.IncompleteReadError):
        if not kafka.uses_sasl and "closed" in str(exc).lower():
            return KafkaConnectError(
                f"the broker at {where} closed the connection before answering: it may need "
                f"SASL authentication (security.protocol is {kafka.security_protocol}; set "
                f"sasl.mechanism, sasl.username and sasl.password{config})"
            )
        return KafkaConnectError(f"cannot use Kafka at {where}: {exc}")
    return KafkaConnectError(f"cannot use Kafka at {where}: {type(exc).__name__}: {exc}")


def port_speaks_tls(host: str, port: int, timeout: float = TLS_SNIFF_TIMEOUT) -> bool:
    """True when ``host:port`` completes a TLS handshake (certificate not checked).

    Only used to word an error: nothing is sent over the connection, which is closed at once.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ValueError):
        return False


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError | EOFError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "the broker closed the connection"
    return str(getattr(exc, "reason", None) or str(exc) or type(exc).__name__)


def _offered(exc: BaseException) -> str:
    text = str(exc)
    marker = "Enabled mechanisms are:"
    if marker in text:
        return "it offers " + text.split(marker, 1)[1].strip()
    return text
