"""Reads the cluster — brokers, controller, every topic's partitions and settings — into a
:class:`~orderdeck.kafka.cluster_model.ClusterView`.

Three standard requests, the ones ``kafka-topics --describe`` and ``kafka-configs`` make, sent
through an admin client from ``kafka/clients.py`` (so a TLS or SASL cluster is read with the
same settings as everything else):

* **Metadata** for all topics (``allow_auto_topic_creation=False``, so naming a missing topic
  never creates it): brokers with their racks, the controller id, and per partition its
  leader, replicas, in-sync replicas and offline replicas;
* **DescribeConfigs** for ``retention.ms`` and ``cleanup.policy`` of every topic, in one request;
* **ListOffsets** (latest) for log-end offsets, one request per leader, all at once
  (:func:`orderdeck.kafka.admin.list_latest`, which skips leaderless partitions). A leader
  that cannot be reached leaves its partitions' log-end unknown instead of failing the view:
  a broker killed a moment ago still leads its partitions until the controller fences it,
  and with the controller quorum lost the metadata keeps naming it — that is when the
  Cluster view is wanted most.

The controller is the one the metadata names. A KRaft broker names a live broker there (it
forwards controller-bound requests to the quorum), so that is the broker a client's admin
calls go to; the quorum's own leader is ``kafka-metadata-quorum``'s business.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.metadata import MetadataRequest

from orderdeck.errors import KafkaUnavailableError, OrderdeckError
from orderdeck.kafka.admin import AdminSession, list_latest
from orderdeck.kafka.aiokafka_compat import send_request
from orderdeck.kafka.cluster_model import Broker, ClusterView, PartitionInfo, TopicInfo
from orderdeck.kafka.connection import KafkaConnection

#: The topic settings the view shows: how long records stay, and delete or compact.
RETENTION_MS = "retention.ms"
CLEANUP_POLICY = "cleanup.policy"
_UNKNOWN_TOPIC = 3


class UnknownTopicError(OrderdeckError):
    """A topic asked for by name that the cluster does not have."""


class ClusterReader(AdminSession):
    """Takes :class:`ClusterView` snapshots; keeps one admin client for its whole life, so
    the Cluster screen's refresh every two seconds costs three small round trips."""

    def __init__(
        self,
        kafka: KafkaConnection,
        *,
        client_suffix: str = "cluster",
        request_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__(kafka, client_suffix=client_suffix, request_timeout_ms=request_timeout_ms)

    async def describe(
        self,
        topics: Sequence[str] | None = None,
        *,
        include_internal: bool = True,
        metadata_only: bool = False,
    ) -> ClusterView:
        """The cluster now: all topics (or only ``topics``, which must exist), sorted by name.

        ``metadata_only`` skips the settings and log-end offsets (left None): one request,
        enough to count under-replicated and offline partitions in the background.

        Raises :class:`UnknownTopicError` for a named topic the cluster lacks and
        KafkaUnavailableError when the cluster does not answer.
        """
        admin = self._client
        names = sorted(set(topics)) if topics is not None else None
        try:
            request = MetadataRequest(names, allow_auto_topic_creation=False)
            metadata = (await send_request(admin, request)).to_object()
            raw_topics = _existing_topics(metadata["topics"], names)
            if not include_internal:
                raw_topics = [t for t in raw_topics if not t.get("is_internal", False)]
            leaders = {
                t["topic"]: {p["partition"]: p["leader"] for p in t["partitions"]}
                for t in raw_topics
            }
            wanted = {(t, p) for t, ps in leaders.items() for p in ps}
            if metadata_only:
                configs: dict[str, dict[str, str | None]] = {}
                ends: dict[tuple[str, int], int] = {}
            else:
                configs, ends = await asyncio.gather(
                    _topic_configs(admin, list(leaders)),
                    list_latest(admin, wanted, leaders, skip_unreachable=True),
                )
        except KafkaError as exc:
            raise KafkaUnavailableError(f"could not describe the cluster: {exc}") from exc
        controller_id = int(metadata.get("controller_id", -1))
        brokers = tuple(
            sorted(
                (
                    Broker(
                        id=b["node_id"],
                        host=b["host"],
                        port=b["port"],
                        rack=b.get("rack"),
                        is_controller=b["node_id"] == controller_id,
                    )
                    for b in metadata["brokers"]
                ),
                key=lambda b: b.id,
            )
        )
        infos = tuple(
            _topic_info(t, configs.get(t["topic"], {}), ends)
            for t in sorted(raw_topics, key=lambda t: t["topic"])
        )
        return ClusterView(
            cluster_id=metadata.get("cluster_id"),
            controller_id=controller_id,
            brokers=brokers,
            topics=infos,
            taken_at=time.time(),
        )


async def describe_cluster(
    kafka: KafkaConnection,
    topics: Sequence[str] | None = None,
    *,
    include_internal: bool = True,
) -> ClusterView:
    """One snapshot with a client opened and closed for it (``orderdeck kafka describe``)."""
    async with ClusterReader(kafka, client_suffix="describe") as reader:
        return await reader.describe(topics, include_internal=include_internal)


def _existing_topics(raw: list[dict[str, Any]], names: list[str] | None) -> list[dict[str, Any]]:
    """The metadata's topics that exist; a named topic that does not is an error."""
    missing = sorted(t["topic"] for t in raw if t["error_code"] == _UNKNOWN_TOPIC)
    if names is not None and missing:
        raise UnknownTopicError(f"no such topic: {', '.join(missing)}")
    return [t for t in raw if t["error_code"] != _UNKNOWN_TOPIC]


async def _topic_configs(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, dict[str, str | None]]:
    """topic -> {retention.ms, cleanup.policy} (with broker defaults applied by the broker)."""
    if not topics:
        return {}
    # The request admin.describe_configs would make, sent through send_request so that a
    # broker that just died is skipped rather than picked at random.
    resources = [
        (ConfigResourceType.TOPIC, name, [RETENTION_MS, CLEANUP_POLICY]) for name in topics
    ]
    configs: dict[str, dict[str, str | None]] = {}
    response = await send_request(admin, DescribeConfigsRequest(resources))
    for resource in response.to_object()["resources"]:
        if resource["error_code"] != 0:
            continue  # deleted meanwhile: the topic shows without settings
        configs[resource["resource_name"]] = {
            entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
        }
    return configs


def _topic_info(
    raw: dict[str, Any], configs: dict[str, str | None], ends: dict[tuple[str, int], int]
) -> TopicInfo:
    name = raw["topic"]
    partitions = tuple(
        PartitionInfo(
            partition=p["partition"],
            leader=p["leader"],
            replicas=tuple(p["replicas"]),
            isr=tuple(p["isr"]),
            offline_replicas=tuple(p.get("offline_replicas", ())),
            log_end_offset=ends.get((name, p["partition"])),
        )
        for p in sorted(raw["partitions"], key=lambda p: p["partition"])
    )
    retention = configs.get(RETENTION_MS)
    return TopicInfo(
        name=name,
        internal=bool(raw.get("is_internal", False)),
        partitions=partitions,
        retention_ms=int(retention) if retention is not None else None,
        cleanup_policy=configs.get(CLEANUP_POLICY),
    )
