"""The cluster as ``orderdeck kafka describe`` and the Cluster screen show it: pure data.

Plain frozen dataclasses with no Kafka client behind them, so screens and widgets may import
this module (the layering rule allows ``orderdeck.kafka.cluster_model`` alone) while
``kafka/cluster.py`` fills it from the broker's answers. The flags a reader acts on —
under-replicated, offline — are computed here once, by the rules of ``kafka-topics
--describe --under-replicated-partitions`` / ``--unavailable-partitions``, so every view
agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Broker:
    """One broker of the cluster as the metadata names it."""

    id: int
    host: str
    port: int
    rack: str | None
    is_controller: bool


@dataclass(frozen=True)
class PartitionInfo:
    """One partition: who leads it, who holds it, who is in sync, where its log ends.

    ``leader`` is -1 while the partition has no leader; ``log_end_offset`` is None when it
    could not be read (no leader, or the leader did not answer).
    """

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    log_end_offset: int | None

    @property
    def under_replicated(self) -> bool:
        """Fewer replicas in sync than assigned: one broker more lost may lose data."""
        return len(self.isr) < len(self.replicas)

    @property
    def offline(self) -> bool:
        """No leader: nobody can write to or read from the partition."""
        return self.leader < 0


@dataclass(frozen=True)
class TopicInfo:
    """One topic with its partitions and the two settings that decide how long data stays.

    ``retention_ms`` is -1 for "kept forever" and None when the configs could not be read.
    """

    name: str
    internal: bool
    partitions: tuple[PartitionInfo, ...]
    retention_ms: int | None
    cleanup_policy: str | None

    @property
    def replication_factor(self) -> int:
        """The replicas of its first partition, as ``kafka-topics`` reports it."""
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def under_replicated(self) -> int:
        """How many of its partitions are under-replicated."""
        return sum(p.under_replicated for p in self.partitions)

    @property
    def offline(self) -> int:
        """How many of its partitions have no leader."""
        return sum(p.offline for p in self.partitions)


@dataclass(frozen=True)
class ClusterView:
    """The whole cluster at one moment (``taken_at`` is wall-clock seconds)."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[Broker, ...]
    topics: tuple[TopicInfo, ...]
    taken_at: float

    @property
    def under_replicated(self) -> int:
        """Under-replicated partitions over all topics (the Pipeline screen's warning)."""
        return sum(t.under_replicated for t in self.topics)

    @property
    def offline(self) -> int:
        """Leaderless partitions over all topics."""
        return sum(t.offline for t in self.topics)

    def leaders(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> leader id, to tell which leaders moved between two views."""
        return {(t.name, p.partition): p.leader for t in self.topics for p in t.partitions}

    def to_json(self) -> dict[str, Any]:
        """The view in the camelCase shape ``orderdeck kafka describe --json`` prints."""
        return {
            "clusterId": self.cluster_id,
            "controllerId": self.controller_id,
            "takenAt": self.taken_at,
            "brokers": [
                {
                    "id": b.id,
                    "host": b.host,
                    "port": b.port,
                    "rack": b.rack,
                    "isController": b.is_controller,
                }
                for b in self.brokers
            ],
            "topics": [
                {
                    "name": t.name,
                    "internal": t.internal,
                    "replicationFactor": t.replication_factor,
                    "retentionMs": t.retention_ms,
                    "cleanupPolicy": t.cleanup_policy,
                    "underReplicated": t.under_replicated,
                    "offline": t.offline,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "leader": p.leader,
                            "replicas": list(p.replicas),
                            "isr": list(p.isr),
                            "offlineReplicas": list(p.offline_replicas),
                            "underReplicated": p.under_replicated,
                            "offline": p.offline,
                            "logEndOffset": p.log_end_offset,
                        }
                        for p in t.partitions
                    ],
                }
                for t in self.topics
            ],
        }
