"""Is a Kafka broker ready? Ask it for metadata, the way every client's first request does.

An open TCP port is not readiness: a KRaft broker binds its listener early and only starts
answering once it has caught up with the metadata log and been unfenced. A Metadata request
that comes back naming a broker and a controller is the signal clients actually depend on.

The request is tiny and fixed (Metadata v4, no topics), so it is encoded here directly rather
than pulling a client library into the start-up path: ``LocalKafka.start`` runs it from plain
threads while it also watches the JVM, and ``orderdeck kafka start`` stays free of asyncio.
Metadata v4 is the oldest version Kafka 4.x still serves (KIP-896) and is not yet "flexible",
so the framing is the classic one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass

from orderdeck.errors import KafkaUnavailableError

_METADATA_API_KEY = 3
_METADATA_VERSION = 4
_CLIENT_ID = b"orderdeck-probe"
_MAX_RESPONSE = 16 * 1024 * 1024


@dataclass(frozen=True)
class MetadataAnswer:
    """What a broker said about its cluster."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port)

    @property
    def ready(self) -> bool:
        """A broker that lists a live broker and a controller can serve clients."""
        return bool(self.brokers) and self.controller_id >= 0


class ProbeError(Exception):
    """The broker did not answer a metadata request (yet)."""


def parse_bootstrap(bootstrap_servers: str) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9093"`` -> ``[("h1", 9092), ("h2", 9093)]``."""
    addresses: list[tuple[str, int]] = []
    for part in bootstrap_servers.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            raise KafkaUnavailableError(f"bad bootstrap address {part!r} (expected HOST:PORT)")
        addresses.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not addresses:
        raise KafkaUnavailableError("no bootstrap servers given")
    return addresses


def _request(correlation_id: int) -> bytes:
    body = struct.pack(
        ">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(_CLIENT_ID)
    )
    # topics = empty array (not null: null would ask for every topic), no auto-creation.
    body += _CLIENT_ID + struct.pack(">ib", 0, 0)
    return struct.pack(">i", len(body)) + body


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        value = self._data[self._pos : self._pos + length].decode("utf-8", "replace")
        self._pos += length
        return value


def _parse(payload: bytes, correlation_id: int) -> MetadataAnswer:
    try:
        reader = _Reader(payload)
        if reader.take(">i") != correlation_id:
            raise ProbeError("response does not match the request")
        reader.take(">i")  # throttle time
        brokers = []
        for _ in range(reader.take(">i")):
            node_id = reader.take(">i")
            host = reader.string() or ""
            port = reader.take(">i")
            reader.string()  # rack
            brokers.append((node_id, host, port))
        cluster_id = reader.string()
        controller_id = reader.take(">i")
    except struct.error as exc:
        raise ProbeError(f"malformed metadata response: {exc}") from None
    return MetadataAnswer(cluster_id, controller_id, tuple(brokers))


#: The first bytes of a TLS alert record (content type 21, version 3.x): what a TLS listener
#: sends back when a plaintext Kafka request arrives instead of a ClientHello.
_TLS_ALERT = b"\x15\x03"


def _size(header: bytes) -> int:
    if header.startswith(_TLS_ALERT):
        raise ProbeError("the port answered with a TLS alert: the broker seems to need TLS")
    (size,) = struct.unpack(">i", header)
    if not 0 < size <= _MAX_RESPONSE:
        raise ProbeError(f"implausible response size {size}: is this a Kafka port?")
    return int(size)


def probe(host: str, port: int, timeout: float = 2.0) -> MetadataAnswer:
    """Send one Metadata request and return the answer; raises ProbeError on any failure."""
    correlation_id = int(time.monotonic_ns() & 0x7FFFFFFF)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_request(correlation_id))
            size = _size(_recv_exactly(sock, 4))
            return _parse(_recv_exactly(sock, size), correlation_id)
    except OSError as exc:
        raise ProbeError(str(exc) or type(exc).__name__) from None


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            raise ProbeError("connection closed by the broker")
        chunks += chunk
    return bytes(chunks)


async def probe_async(host: str, port: int, timeout: float = 2.0) -> MetadataAnswer:  # noqa: ASYNC109
    """The asyncio twin of :func:`probe`."""
    correlation_id = int(time.monotonic_ns() & 0x7FFFFFFF)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_request(correlation_id))
            await writer.drain()
            size = _size(await reader.readexactly(4))
            return _parse(await reader.readexactly(size), correlation_id)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise ProbeError(str(exc) or type(exc).__name__) from None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def wait_until_ready(bootstrap_servers: str, timeout: float) -> None:  # noqa: ASYNC109
    """Return once some bootstrap server answers a metadata request with a live broker.

    Raises KafkaUnavailableError after ``timeout`` seconds, naming the last failure.
    """
    addresses = parse_bootstrap(bootstrap_servers)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        for host, port in addresses:
            remaining = deadline - time.monotonic()
            try:
                answer = await probe_async(host, port, timeout=max(0.1, min(2.0, remaining)))
            except ProbeError as exc:
                last = str(exc)
                continue
            if answer.ready:
                return
            last = "the broker is not ready yet (no live broker or controller)"
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(
                f"Kafka at {bootstrap_servers} did not answer a metadata request within "
                f"{timeout:g} s ({last})"
            )
        await asyncio.sleep(0.1)


def wait_until_ready_sync(bootstrap_servers: str, timeout: float) -> None:
    """Blocking version of :func:`wait_until_ready` for code that has no event loop."""
    addresses = parse_bootstrap(bootstrap_servers)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        for host, port in addresses:
            remaining = deadline - time.monotonic()
            try:
                if probe(host, port, timeout=max(0.1, min(2.0, remaining))).ready:
                    return
                last = "the broker is not ready yet (no live broker or controller)"
            except ProbeError as exc:
                last = str(exc)
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(
                f"Kafka at {bootstrap_servers} did not answer a metadata request within "
                f"{timeout:g} s ({last})"
            )
        time.sleep(0.1)
