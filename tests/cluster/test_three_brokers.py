"""Three real brokers: the cluster's commands, its topics, and the pipeline through failover.

The pipeline here is the one ``serve`` and ``launch`` run (a :class:`Runtime`: the API over
real HTTP, the four services, SQLite), pointed at the session's three brokers with topics of
its own. Faults are made through ``LocalCluster.nodes``, the API the Chaos screen uses.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orderdeck.config import Settings
from orderdeck.events import TopicNames
from orderdeck.kafka.cluster_model import ClusterView
from orderdeck.kafka.dead_letters import MEMORY_TOPIC, _ensure_memory_topic
from orderdeck.kafka.local import LocalKafka, tool_command
from orderdeck.kafka.local_cluster import LocalCluster, local_kafka_for
from orderdeck.runtime import Runtime
from tests.api.conftest import wait_for
from tests.cluster.conftest import StartedCluster, orderdeck_cli, wait_for_view

FINAL = {"confirmed", "rejected", "payment_declined", "cancelled"}
ORDERS = 500
KILL_AFTER = 150  # accepted orders before the leader is killed
CLIENTS = 8
#: The API's bound on Kafka's ack; a partition's failover (session timeout 4 s) fits in it.
ACK_TIMEOUT_S = 6.0
ORDER = {"customerId": "c-failover", "productId": "sku-mouse", "quantity": 1}


def test_kafka_start_status_cover_every_broker(three_brokers: StartedCluster) -> None:
    cluster = three_brokers.cluster
    ports = [node.port for node in cluster.nodes]
    assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
    controllers = {node.controller_port for node in cluster.nodes}
    assert len(controllers) == 3
    assert min(controllers) > ports[-1]
    out = three_brokers.start_output
    assert "on 3 brokers" in out, out
    assert "-Xms128m -Xmx384m" in out, out
    for node in cluster.nodes:
        assert f"broker {node.node_id}: {node.bootstrap} (controller port" in out, out
    assert out.splitlines()[-1] == cluster.bootstrap_servers

    status = orderdeck_cli("kafka", "status", "--data-dir", str(cluster.data_dir), timeout=60)
    assert status.returncode == 0, status.stderr
    for node in cluster.nodes:
        assert f"broker {node.node_id}:  {node.bootstrap}  pid {node.pid} " in status.stdout
    assert "running:   3 of 3 brokers" in status.stdout, status.stdout

    # A second start adopts the running brokers (no --brokers: the data dir says three).
    again = orderdeck_cli("kafka", "start", "--data-dir", str(cluster.data_dir), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "brokers already run" in again.stdout, again.stdout


def test_a_data_dir_with_a_cluster_keeps_using_it(tmp_path: Path) -> None:
    assert isinstance(local_kafka_for(tmp_path), LocalKafka)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "cluster.json").write_text(
        '{"cluster_id": "abc", "nodes": [{"node_id": 1, "port": 1, "controller_port": 2}]}'
    )
    assert isinstance(local_kafka_for(tmp_path), LocalCluster)
    with pytest.raises(Exception, match="holds a local cluster of 3 brokers"):
        local_kafka_for(tmp_path, brokers=1)


def test_pipeline_topics_have_three_replicas_and_min_isr_two(
    three_brokers: StartedCluster,
) -> None:
    # The dead-letter re-drive memory too: what was re-driven must survive a lost broker.
    asyncio.run(_ensure_memory_topic(three_brokers.cluster.connection()))
    # Kafka's own kafka-topics --describe, so the check does not rest on orderdeck's reading.
    described = subprocess.run(
        tool_command(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            three_brokers.cluster.bootstrap_servers,
            "--describe",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    summaries = {
        line.split()[1]: line
        for line in described.splitlines()
        if line.startswith("Topic:") and "PartitionCount:" in line
    }
    memory = summaries[MEMORY_TOPIC]
    assert "ReplicationFactor: 3" in memory, memory
    assert "min.insync.replicas=2" in memory, memory
    for name in TopicNames().all():
        summary = summaries[name]
        assert "PartitionCount: 3" in summary, summary
        assert "ReplicationFactor: 3" in summary, summary
        assert "min.insync.replicas=2" in summary, summary
    partitions = [line for line in described.splitlines() if "\tPartition: " in line]
    assert partitions, described
    assert all(
        "Isr: " in line and len(line.split("Isr: ")[1].split()[0].split(",")) == 3
        for line in partitions
    ), described


@pytest.fixture
async def pipeline(cluster: LocalCluster, tmp_path: Path) -> AsyncIterator[Runtime]:
    """The whole pipeline on the three brokers, with topics of its own."""
    settings = Settings(
        bootstrap_servers=cluster.bootstrap_servers,
        api_port=0,
        data_dir=tmp_path,
        topic_prefix=f"t{time.monotonic_ns() % 10**9}.",
    )
    runtime = Runtime(settings, ack_timeout=ACK_TIMEOUT_S)
    await runtime.start()
    runtime.store.set_stock("sku-mouse", 10 * ORDERS)
    try:
        yield runtime
    finally:
        await runtime.stop()


def _leaders(view: ClusterView, topic: str) -> dict[int, int]:
    [info] = [t for t in view.topics if t.name == topic]
    return {p.partition: p.leader for p in info.partitions}


def _isr(view: ClusterView, topic: str) -> set[tuple[int, ...]]:
    [info] = [t for t in view.topics if t.name == topic]
    return {tuple(sorted(p.isr)) for p in info.partitions}


async def test_kill_9_of_order_events_leader_loses_no_order_and_charges_no_one_twice(
    cluster: LocalCluster, pipeline: Runtime
) -> None:
    orders_topic = pipeline.names.orders
    before = await pipeline.cluster_view()
    victim = cluster.node(_leaders(before, orders_topic)[0])
    accepted: list[str] = []
    refused = 0
    sent = 0
    killed = asyncio.Event()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, refused
        while sent < ORDERS:
            sent += 1
            response = await http.post("/api/v1/orders", json=ORDER)
            if response.status_code == 201:
                accepted.append(response.json()["event"]["id"])
            else:
                assert response.status_code == 503, response.text
                refused += 1
            if len(accepted) >= KILL_AFTER and not killed.is_set():
                killed.set()
                assert await asyncio.to_thread(victim.kill)

    async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    assert killed.is_set()
    assert not victim.is_running()

    # The Cluster screen's data: the leadership moved off the dead broker, its ISR shrank,
    # and the Pipeline's warning counts the under-replicated partitions.
    shrunk = await wait_for_view(
        cluster,
        lambda v: (
            victim.node_id not in _leaders(v, orders_topic).values()
            and all(victim.node_id not in isr for isr in _isr(v, orders_topic))
        ),
        within=30,
        what="the leadership to move and the ISR to shrink",
    )
    assert _isr(shrunk, orders_topic) <= {tuple(sorted(set(range(1, 4)) - {victim.node_id}))}
    await wait_for(
        lambda: pipeline.status().under_replicated > 0,
        within=30,
        what="the Pipeline's under-replicated warning (the runtime's own refresh)",
    )

    store = pipeline.store

    def all_final() -> bool:
        return all((o := store.get_order(i)) is not None and o.status in FINAL for i in accepted)

    await wait_for(all_final, within=90, what="every accepted order final with a broker down")
    # A 503 means no order: only the accepted ones exist, each charged at most once.
    assert sum(store.status_counts().values()) == len(accepted), (len(accepted), refused)
    assert len(set(accepted)) == len(accepted)
    charged = 0
    for order_id in accepted:
        order = store.get_order(order_id)
        assert order is not None
        charge = store.order_payments(order_id).get("charge", 0)
        assert charge in (0, order.amountCents), (order_id, order.status, charge)
        if order.status == "confirmed":
            assert charge == order.amountCents
        charged += charge
    assert store.payment_totals()["charge"] == charged

    # The broker comes back: the ISR grows to three again and the warning clears.
    await asyncio.to_thread(victim.start, 90)
    await wait_for_view(
        cluster,
        lambda v: _isr(v, orders_topic) == {(1, 2, 3)},
        within=60,
        what="the ISR back to three",
    )
    await wait_for(
        lambda: pipeline.status().under_replicated == 0,
        within=30,
        what="the under-replicated warning to clear",
    )


async def test_two_brokers_down_answers_503_not_enough_replicas_then_recovers(
    cluster: LocalCluster, pipeline: Runtime
) -> None:
    first, second, survivor = cluster.nodes
    # One after the other, each a controlled shutdown: the second still has a controller
    # quorum to hand its leaderships to the survivor, whose ISR is then itself alone.
    for node in (first, second):
        assert await asyncio.to_thread(node.stop, 30)
    async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as http:
        refused = await http.post("/api/v1/orders", json=ORDER)
        assert refused.status_code == 503, refused.text
        assert "not enough in-sync replicas" in refused.json()["error"]["message"], refused.text
        assert survivor.is_running()
        # Broker 1, the first bootstrap server, is down: the survivor still counts as Kafka
        # answering, and the Pipeline warns of the partitions short of replicas.
        await wait_for(
            lambda: pipeline.kafka_reachable and pipeline.status().under_replicated > 0,
            within=30,
            what="Kafka reachable through the survivor, with under-replicated partitions",
        )

        await asyncio.to_thread(second.start, 90)  # nothing else is done: no restart

        accepted: list[str] = []

        async def placed() -> bool:
            response = await http.post("/api/v1/orders", json=ORDER)
            if response.status_code == 201:
                accepted.append(response.json()["event"]["id"])
            return bool(accepted)

        await wait_for(placed, within=60, what="POST to answer 201 again")
    store = pipeline.store
    await wait_for(
        lambda: (o := store.get_order(accepted[0])) is not None and o.status == "confirmed",
        within=60,
        what="the order after the recovery to be confirmed",
    )


async def test_a_cluster_that_lost_its_quorum_stops_without_waiting_out_the_timeout(
    cluster: LocalCluster,
) -> None:
    first, second, survivor = cluster.nodes
    for node in (first, second):
        assert await asyncio.to_thread(node.kill)
    # The survivor's controlled shutdown waits for a controller that cannot be elected: the
    # stop (launch's q, kafka stop) gives it a few seconds, not the full 30 s timeout.
    began = time.monotonic()
    assert await asyncio.to_thread(cluster.stop, 30)
    took = time.monotonic() - began
    assert not survivor.is_running()
    assert took < 20, f"the stop took {took:.1f} s"
