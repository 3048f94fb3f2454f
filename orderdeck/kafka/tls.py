"""The local broker's TLS material: a private CA and a broker certificate for 127.0.0.1.

``orderdeck kafka start --secure`` needs a certificate that clients can verify without turning
verification off, so it makes its own small CA and signs one broker certificate naming both
``127.0.0.1`` (an IP SAN) and ``localhost`` (a DNS SAN) with it. Clients trust ``ca.pem``
alone (``ssl.ca.location``). Everything is generated with the ``cryptography`` library and
written as PEM, which Kafka reads directly (``ssl.keystore.type=PEM``, KIP-651), as do
librdkafka/kcat and Python's ``ssl``.

Layout of ``<data-dir>/kafka/tls`` (the directory is mode 0700)::

    ca.pem          the CA certificate: what clients trust
    ca-key.pem      the CA's private key (0600), kept to reissue the broker certificate
    broker.pem      the broker's private key followed by its certificate chain (0600):
                    Kafka's keystore
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The names a client may use for the local broker; both must verify.
BROKER_HOSTS = ("127.0.0.1", "localhost")
_CA_DAYS = 3650
_BROKER_DAYS = 825  # the longest lifetime clients such as macOS accept for a server certificate
#: A broker certificate that expires sooner than this is reissued at the next start.
_RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class BrokerTls:
    """Where the broker's TLS files are."""

    directory: Path

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def keystore_path(self) -> Path:
        return self.directory / "broker.pem"


def ensure_certificates(directory: Path) -> BrokerTls:
    """Create the CA and broker certificate if missing (or about to expire); idempotent.

    The CA is kept across starts so a client that trusts ``ca.pem`` keeps working; a broker
    certificate is reissued only when it is missing, unreadable or near its end.
    """
    tls = BrokerTls(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_cert, ca_key = _load_ca(tls)
    if ca_cert is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue_ca(ca_key)
        write_private(tls.ca_key_path, _key_pem(ca_key))
        write_private(tls.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
        tls.keystore_path.unlink(missing_ok=True)  # signed by the old CA, if any
    if not _broker_certificate_usable(tls, ca_cert):
        broker_key = ec.generate_private_key(ec.SECP256R1())
        broker_cert = _issue_broker(broker_key, ca_cert, ca_key)
        chain = b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in (broker_cert, ca_cert)
        )
        write_private(tls.keystore_path, _key_pem(broker_key) + chain)
    # The CA certificate is public; make it readable like any CA bundle.
    tls.ca_path.chmod(0o644)
    return tls


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` so that only the owner can ever read it (created 0600, then renamed)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    partial.replace(path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: Kafka's PEM keystore and librdkafka both read it; the file's mode
    # protects it, as an encryption password would have to sit beside it in server.properties.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(tls: BrokerTls) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    try:
        cert = x509.load_pem_x509_certificate(tls.ca_path.read_bytes())
        key = serialization.load_pem_private_key(tls.ca_key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.not_valid_after_utc < _now():
        return None, None
    if cert.public_key() != key.public_key():
        return None, None
    return cert, key


def _broker_certificate_usable(tls: BrokerTls, ca_cert: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(tls.keystore_path.read_bytes())
    except (OSError, ValueError):
        return False
    return (
        cert.issuer == ca_cert.subject
        and cert.not_valid_after_utc - _now() > _RENEW_BEFORE
        and _verifies(cert, ca_cert)
    )


def _verifies(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issue_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "orderdeck"),
            x509.NameAttribute(NameOID.COMMON_NAME, "orderdeck local Kafka CA"),
        ]
    )
    now = _now()
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_broker(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = _now()
    public = key.public_key()
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(host)) if host[0].isdigit() else x509.DNSName(host)
        for host in BROKER_HOSTS
    ]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_HOSTS[1])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_BROKER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
