"""The API's producer while one partition's leader is dead.

Every partition of a replication-factor-3 topic on three brokers has a copy on the dead
broker, and an ``acks=all`` write waits for the whole in-sync set: until the controller fences
the dead broker (``broker.session.timeout.ms``, 4 s here) and drops it from every ISR, no
partition acknowledges anything. That stall is Kafka's, and the same for all partitions.

What the producer must not add is a wait of its own: aiokafka holds a partition's next batch
until the one before it is drained, which for the dead leader's partition lasts until its
successor is known. The single-event batcher ships each partition in a lane of its own, so
a live partition's orders are acknowledged as soon as its ISR has shrunk, while the dead
leader's partition still has a stream of orders waiting. This pins that down.
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


async def test_a_dead_leader_holds_up_no_other_partition_past_its_isr_shrink(
    cluster: LocalCluster,
) -> None:
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
        # The Cluster view still reads while the metadata names the dead broker as a leader
        # (until it is fenced): its partitions' log-end is unknown, the others' is read.
        async with ClusterReader(connection) as reader:
            dying = await reader.describe([names.orders])
        by_partition = {p.partition: p for p in dying.topics[0].partitions}
        assert by_partition[0].leader == victim.node_id
        assert by_partition[0].log_end_offset is None
        assert by_partition[live].log_end_offset == 1
        # A steady stream for the dead leader's partition, as the API sees it: more batches
        # than aiokafka takes for one partition, so the next one waits for the successor.
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
        # And only once the dead broker had left the live partition's in-sync set (acks=all).
        async with ClusterReader(connection) as reader:
            after = await reader.describe([names.orders], metadata_only=True)
        [isr] = [p.isr for p in after.topics[0].partitions if p.partition == live]
        assert victim.node_id not in isr
        done = await asyncio.wait_for(asyncio.gather(*stuck), 60)  # after the failover
        assert {d.partition for d in done} == {0}
    finally:
        await producer.stop()
