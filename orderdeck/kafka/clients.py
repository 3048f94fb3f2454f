"""The one place that builds orderdeck's Kafka clients.

Every producer, consumer and admin client orderdeck opens — the API's producer, the services'
consumers and outbox producers, topic creation, the groups inspector, the tail — is made here
from a :class:`~orderdeck.kafka.connection.KafkaConnection`. So a cluster that needs TLS or
SASL works for all of them at once, and no client can be forgotten and stay plaintext.
Client ids are ``<client.id prefix>-<what the client is>``; with the default prefix they are
``orderdeck-payment-0``, ``orderdeck-tail`` and so on, the names the groups view shows.
``tests/test_layering.py`` checks that no other module constructs an aiokafka client.

The one bounded connection check every command and the runtime make before their first
client (:func:`check_connection`, its errors worded by ``connect_errors``) opens its raw
broker connection here too.

The role's own options (``acks``, ``group_id``, timeouts) are the caller's business; this
module only adds the connection's and the client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka import probe
from orderdeck.kafka.connect_errors import (
    CHECK_TIMEOUT,
    FINAL_ERRORS,
    TLS_SNIFF_TIMEOUT,
    KafkaConnectError,
    explain,
    port_speaks_tls,
)
from orderdeck.kafka.connection import KafkaConnection

#: How long one readiness attempt of a non-plaintext connection may take.
_READY_ATTEMPT_S = 5.0
#: How long closing a checked connection may take (a TLS close_notify and the broker's FIN).
_CLOSE_WAIT_S = 1.0


def client_id_for(kafka: KafkaConnection, client_suffix: str) -> str:
    """``<prefix>-<suffix>`` (or the prefix alone for an empty suffix)."""
    return f"{kafka.client_id}-{client_suffix}" if client_suffix else kafka.client_id


def _options(kafka: KafkaConnection, client_suffix: str, options: dict[str, Any]) -> dict[str, Any]:
    merged = kafka.client_options()
    merged["client_id"] = client_id_for(kafka, client_suffix)
    clash = merged.keys() & options.keys()
    if clash:
        raise TypeError(f"set by the connection, not by the caller: {', '.join(sorted(clash))}")
    merged.update(options)
    return merged


def new_producer(kafka: KafkaConnection, *, client_suffix: str, **options: Any) -> AIOKafkaProducer:
    """An (unstarted) aiokafka producer for ``kafka`` with the role's ``options``."""
    return AIOKafkaProducer(**_options(kafka, client_suffix, options))


def new_consumer(
    kafka: KafkaConnection,
    *topics: str,
    group_id: str | None = None,
    client_suffix: str,
    **options: Any,
) -> AIOKafkaConsumer:
    """An (unstarted) aiokafka consumer; ``group_id=None`` for one outside any group."""
    return AIOKafkaConsumer(*topics, group_id=group_id, **_options(kafka, client_suffix, options))


def new_admin(kafka: KafkaConnection, *, client_suffix: str, **options: Any) -> AIOKafkaAdminClient:
    """An (unstarted) aiokafka admin client for ``kafka``."""
    return AIOKafkaAdminClient(**_options(kafka, client_suffix, options))


async def open_connection(
    kafka: KafkaConnection,
    host: str,
    port: int,
    *,
    client_suffix: str,
    timeout: float,  # noqa: ASYNC109 - aiokafka's request timeout, not a wait of ours
) -> Any:
    """One connection to one broker, TLS, ApiVersions and SASL done (an ``AIOKafkaConnection``).

    Unlike a client's bootstrap, which logs a failure and moves on, this raises it: the
    ``ssl`` verification error, ``SaslAuthenticationFailed``, the closed socket, so that
    :func:`check_connection` can say what went wrong.
    """
    options: dict[str, Any] = {
        "client_id": client_id_for(kafka, client_suffix),
        "request_timeout_ms": max(100, int(timeout * 1000)),
        "security_protocol": kafka.security_protocol,
        "ssl_context": kafka.ssl_context(),
    }
    if kafka.uses_sasl:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password
    conn = AIOKafkaConnection(host, port, **options)
    try:
        await conn.connect()
    except KafkaError:
        # The socket was open (the broker refused SASL or hung up): let it finish closing.
        await close_connection(conn)
        raise
    return conn


async def close_connection(conn: Any) -> None:
    """Close a connection from :func:`open_connection` and wait (briefly) until it is closed.

    aiokafka only starts closing (a TLS close_notify goes out first); a short-lived loop
    such as :func:`check_connection_sync`'s would otherwise end with the socket still open.
    """
    closed = conn.close()
    if closed is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(closed), _CLOSE_WAIT_S)


async def check_connection(
    kafka: KafkaConnection,
    timeout: float = CHECK_TIMEOUT,  # noqa: ASYNC109 - the bounded wait is the point
) -> probe.MetadataAnswer:
    """Connect once as a client would and ask for metadata; raise one clear error otherwise.

    Returns within ``timeout`` seconds either way, the error being
    :func:`~orderdeck.kafka.connect_errors.explain`'s one line. Authentication and TLS
    failures are final at once (another bootstrap server would be asked with the same
    settings); an unreachable address moves on to the next one.
    """
    deadline = time.monotonic() + timeout
    # A non-TLS client keeps back a little time to sniff for TLS when it fails.
    sniff_budget = 0.0 if kafka.uses_tls else min(TLS_SNIFF_TIMEOUT, timeout / 5)
    failure: OrderdeckError | None = None
    for host, port in probe.parse_bootstrap(kafka.bootstrap_servers):
        remaining = deadline - sniff_budget - time.monotonic()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                return await _ask_metadata(kafka, host, port, remaining)
        except (OSError, KafkaError, TimeoutError, asyncio.IncompleteReadError) as exc:
            speaks_tls = None
            if sniff_budget and not isinstance(exc, ConnectionRefusedError):
                sniff = max(0.2, min(sniff_budget, deadline - time.monotonic()))
                speaks_tls = await asyncio.to_thread(port_speaks_tls, host, port, sniff)
            failure = explain(exc, kafka, (host, port), port_speaks_tls=speaks_tls, waited=timeout)
            if isinstance(failure, FINAL_ERRORS) or not _network_only(exc):
                raise failure from None
    if failure is None:
        failure = KafkaConnectError(
            f"Kafka at {kafka.bootstrap_servers} did not answer within {timeout:g} s"
        )
    raise failure from None


def check_connection_sync(
    kafka: KafkaConnection, timeout: float = CHECK_TIMEOUT
) -> probe.MetadataAnswer:
    """:func:`check_connection` for code without an event loop (or inside someone else's).

    It runs on a private thread with its own loop, so a synchronous caller that happens to
    sit under a running loop (the broker start in ``serve``) cannot trip over it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-check") as pool:
        return pool.submit(asyncio.run, check_connection(kafka, timeout)).result()


def _network_only(exc: BaseException) -> bool:
    """Refused, unreachable, timed out: another bootstrap address may still answer."""
    return isinstance(exc, OSError | TimeoutError) and not isinstance(exc, ssl.SSLError)


async def _ask_metadata(
    kafka: KafkaConnection,
    host: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - aiokafka's request timeout, not a wait of ours
) -> probe.MetadataAnswer:
    conn = await open_connection(kafka, host, port, client_suffix="check", timeout=timeout)
    try:
        response = await conn.send(MetadataRequest([]))
    finally:
        await close_connection(conn)
    cluster = ClusterMetadata()
    cluster.update_metadata(response)
    controller = cluster.controller
    return probe.MetadataAnswer(
        cluster_id=getattr(response, "cluster_id", None),
        controller_id=controller.nodeId if controller is not None else -1,
        brokers=tuple((b.nodeId, b.host, b.port) for b in cluster.brokers()),
    )


async def is_ready(kafka: KafkaConnection, timeout: float) -> bool:  # noqa: ASYNC109
    """Whether the cluster answers a metadata request with a live broker within ``timeout``.

    A plaintext cluster is asked with orderdeck's raw probe (one small request); TLS and SASL
    need a real client's handshake, which :func:`check_connection` does on one connection.
    """
    if kafka.is_plaintext:
        # Each bootstrap server in turn: on a three-broker cluster the first one may be the
        # broker that is down while the other two serve (a refused connection is quick).
        deadline = time.monotonic() + timeout
        for host, port in probe.parse_bootstrap(kafka.bootstrap_servers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if (await probe.probe_async(host, port, timeout=remaining)).ready:
                    return True
            except probe.ProbeError:
                continue
        return False
    try:
        return (await check_connection(kafka, timeout)).ready
    except KafkaUnavailableError:
        return False


async def wait_until_ready(kafka: KafkaConnection, timeout: float) -> None:  # noqa: ASYNC109
    """Return once the cluster answers a metadata request with a live broker.

    A failure that waiting cannot cure (a refused password, TLS on one side only, a
    certificate that does not verify) is raised at once, as its one line; an unreachable or
    still-starting cluster is retried until ``timeout``, then reported with the last reason.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        try:
            if (await check_connection(kafka, max(0.1, min(_READY_ATTEMPT_S, remaining)))).ready:
                return
            last = "the broker is not ready yet (no live broker or controller)"
        except FINAL_ERRORS:
            raise
        except KafkaUnavailableError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(
                f"Kafka at {kafka.bootstrap_servers} ({kafka.describe()}) did not answer a "
                f"metadata request within {timeout:g} s ({last})"
            )
        await asyncio.sleep(0.1)
