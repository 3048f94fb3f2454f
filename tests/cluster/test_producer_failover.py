"""The API's producer while one partition's leader is dead: only that partition's orders wait.

aiokafka holds a partition's next batch until the one before it is drained; a batch for a dead
leader is drained again on every retry, so the single-event batcher (which ships partition
after partition) is not held up by it, and orders for the other partitions are acknowledged
during the failover. This pins that down.
"""

from __future__ import annotations

import asyncio
import uuid

from orderdeck.events import TopicNames
from orderdeck.kafka.cluster import ClusterReader
from orderdeck.kafka.local_cluster import LocalCluster
from orderdeck.kafka.producer import PARTITIONER, EventProducer
from orderdeck.kafka.topics import TopicAdmin
from tests.services.conftest import order_placed


def _order_for(partition: int) -> str:
    """An order id the default partitioner puts on ``partition`` of a three-partition topic."""
    while True:
        order_id = f"ord-{uuid.uuid4().hex[:12]}"
        if PARTITIONER(order_id.encode(), [0, 1, 2], [0, 1, 2]) == partition:
            return order_id


async def test_a_dead_leader_holds_up_only_its_own_partition(cluster: LocalCluster) -> None:
    names = TopicNames(prefix=f"t{uuid.uuid4().hex[:12]}.")
    connection = cluster.connection()
    async with TopicAdmin(connection) as admin:
        await admin.ensure([names.orders], replication_factor=None)
    async with ClusterReader(connection) as reader:
        view = await reader.describe([names.orders], metadata_only=True)
    [info] = view.topics
    assert info.replication_factor == 3
    leaders = {p.partition: p.leader for p in info.partitions}
    victim = cluster.node(leaders[0])
    live = next(p for p, leader in leaders.items() if leader != victim.node_id)

    producer = EventProducer(connection, client_suffix="failover")
    await producer.start()
    try:
        await producer.send_event(order_placed(order_id=_order_for(live)), names.orders)
        assert await asyncio.to_thread(victim.kill)
        # A steady stream for the dead leader's partition, as the API sees it.
        stuck = []
        for _ in range(10):
            event = order_placed(order_id=_order_for(0))
            stuck.append(asyncio.ensure_future(producer.send_event(event, names.orders)))
            await asyncio.sleep(0.02)
        delivery = await producer.send_event(
            order_placed(order_id=_order_for(live)), names.orders, timeout=30
        )
        # Acknowledged while the dead leader's partition still waits for its failover.
        assert delivery.partition == live
        assert not all(s.done() for s in stuck)
        done = await asyncio.wait_for(asyncio.gather(*stuck), 60)  # after the failover
        assert {d.partition for d in done} == {0}
    finally:
        await producer.stop()
