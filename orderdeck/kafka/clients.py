"""The one place that builds orderdeck's Kafka clients.

Every producer, consumer and admin client orderdeck opens — the API's producer, the services'
consumers and outbox producers, topic creation, the groups inspector, the tail — is made here
from a :class:`~orderdeck.kafka.connection.KafkaConnection`. So a cluster that needs TLS or
SASL works for all of them at once, and no client can be forgotten and stay plaintext.
Client ids are ``<client.id prefix>-<what the client is>``; with the default prefix they are
``orderdeck-payment-0``, ``orderdeck-tail`` and so on, the names the groups view shows.
``tests/test_layering.py`` checks that no other module constructs an aiokafka client.

The role's own options (``acks``, ``group_id``, timeouts) are the caller's business; this
module only adds the connection's and the client id.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from orderdeck.errors import KafkaUnavailableError
from orderdeck.kafka import probe
from orderdeck.kafka.connection import KafkaConnection

#: How long one readiness attempt of a non-plaintext connection may take.
_READY_ATTEMPT_S = 5.0


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


async def is_ready(kafka: KafkaConnection, timeout: float) -> bool:  # noqa: ASYNC109
    """Whether the cluster answers a metadata request with a live broker within ``timeout``.

    A plaintext cluster is asked with orderdeck's raw probe (one small request, no client to
    bootstrap); TLS and SASL need a real client's handshake, so those are asked through an
    admin client's metadata request.
    """
    if kafka.is_plaintext:
        host, port = probe.parse_bootstrap(kafka.bootstrap_servers)[0]
        try:
            return (await probe.probe_async(host, port, timeout=timeout)).ready
        except probe.ProbeError:
            return False
    try:
        return await _live_brokers(kafka, timeout) > 0
    except (KafkaError, OSError, TimeoutError):
        return False


async def wait_until_ready(kafka: KafkaConnection, timeout: float) -> None:  # noqa: ASYNC109
    """Return once the cluster answers a metadata request with a live broker.

    Raises KafkaUnavailableError after ``timeout`` seconds, naming the last failure.
    """
    if kafka.is_plaintext:
        await probe.wait_until_ready(kafka.bootstrap_servers, timeout)
        return
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        try:
            if await _live_brokers(kafka, max(0.1, min(_READY_ATTEMPT_S, remaining))):
                return
            last = "the broker is not ready yet (no live broker)"
        except (KafkaError, OSError, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise KafkaUnavailableError(
                f"Kafka at {kafka.bootstrap_servers} ({kafka.describe()}) did not answer a "
                f"metadata request within {timeout:g} s ({last})"
            )
        await asyncio.sleep(0.1)


async def _live_brokers(kafka: KafkaConnection, timeout: float) -> int:  # noqa: ASYNC109
    """Bootstrap an admin client (TLS and SASL included) and count the brokers it sees."""
    admin = new_admin(kafka, client_suffix="ready", request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster.get("brokers") or ())
