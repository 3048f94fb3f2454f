"""The client factory: the connection's options reach every client, ids keep their names."""

from __future__ import annotations

import time
import uuid

import pytest

from orderdeck.errors import KafkaUnavailableError
from orderdeck.events import TopicNames
from orderdeck.kafka.admin import GroupInspector
from orderdeck.kafka.clients import client_id_for, is_ready, new_consumer, wait_until_ready
from orderdeck.kafka.connection import KafkaConnection
from tests.conftest import free_port


def test_client_ids_are_the_prefix_and_the_role() -> None:
    default = KafkaConnection("h:1")
    assert client_id_for(default, "payment-0") == "orderdeck-payment-0"
    assert client_id_for(default, "payment-out") == "orderdeck-payment-out"
    assert client_id_for(default, "tail") == "orderdeck-tail"
    assert client_id_for(default, "") == "orderdeck"
    assert client_id_for(KafkaConnection("h:1", client_id="shop"), "api") == "shop-api"


def test_the_connection_options_cannot_be_overridden_by_a_role() -> None:
    with pytest.raises(TypeError, match="bootstrap_servers"):
        new_consumer(KafkaConnection("h:1"), client_suffix="x", bootstrap_servers="other:2")


async def test_a_group_member_carries_the_prefixed_client_id(
    kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    kafka = KafkaConnection(kafka_bootstrap, client_id=f"p{uuid.uuid4().hex[:6]}")
    group = f"{topic_names.prefix}clients"
    consumer = new_consumer(
        kafka, topic_names.orders, group_id=group, client_suffix="payment-0"
    )  # fmt: skip
    await consumer.start()
    try:
        async with GroupInspector(kafka) as inspector:
            deadline = time.monotonic() + 30
            while True:
                [snapshot] = await inspector.describe([group])
                if snapshot.members or time.monotonic() > deadline:
                    break
                await consumer.getmany(timeout_ms=100)
        assert [m.client_id for m in snapshot.members] == [f"{kafka.client_id}-payment-0"]
    finally:
        await consumer.stop()


async def test_readiness_of_the_session_broker(kafka_connection: KafkaConnection) -> None:
    await wait_until_ready(kafka_connection, timeout=10)
    assert await is_ready(kafka_connection, timeout=5)


async def test_a_cluster_whose_first_bootstrap_broker_is_down_is_still_ready(
    kafka_bootstrap: str,
) -> None:
    # One broker of three killed: the cluster answers through the others.
    gone = f"127.0.0.1:{free_port()}"
    assert await is_ready(KafkaConnection(f"{gone},{kafka_bootstrap}"), timeout=2)
    assert not await is_ready(KafkaConnection(gone), timeout=2)


async def test_a_tls_client_on_a_plaintext_port_is_not_ready_and_says_so_in_time(
    kafka_bootstrap: str,
) -> None:
    # The aiokafka path (any non-plaintext connection): the handshake fails, the wait ends.
    tls = KafkaConnection(kafka_bootstrap, security_protocol="SSL")
    assert not await is_ready(tls, timeout=2)
    began = time.monotonic()
    # A handshake the port cannot do is final: said at once, not retried until the timeout.
    with pytest.raises(KafkaUnavailableError, match=r"does not seem to speak TLS.*\(it is SSL\)"):
        await wait_until_ready(tls, timeout=2)
    assert time.monotonic() - began < 10
