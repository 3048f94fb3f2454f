"""``orderdeck kafka describe [--json] [--topic T] [--exclude-internal]``: the cluster at a glance.

First the brokers (the controller marked), then every topic with its retention and cleanup
policy and one row per partition: leader, replicas, in-sync replicas, flags and log-end offset.
Leaders, replicas and ISR are the ones ``kafka-topics --describe`` prints for the same cluster
(``tests/commands/test_kafka_describe.py`` compares the two). ``--json`` prints
:meth:`ClusterView.to_json` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from orderdeck.commands.common import add_data_dir_flag, add_kafka_flags, kafka_to_inspect
from orderdeck.kafka.cluster_model import ClusterView, PartitionInfo, TopicInfo

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``describe`` to ``orderdeck kafka``."""
    describe = actions.add_parser(
        "describe",
        help="show brokers, controller and every topic's partitions (leader, replicas, ISR)",
        description="Describe the cluster as kafka-topics --describe does, with the brokers, "
        "the controller, retention, cleanup policy and log-end offsets.",
    )
    describe.add_argument("--json", action="store_true", help="print the view as JSON")
    describe.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC",
        help="only this topic (repeat for more); an unknown topic is an error",
    )
    describe.add_argument(
        "--exclude-internal",
        action="store_true",
        help="leave out Kafka's internal topics (__consumer_offsets, ...)",
    )
    add_kafka_flags(describe)
    add_data_dir_flag(describe)
    describe.set_defaults(func=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    """Read the cluster once and print it."""
    from orderdeck.commands.groups import quiet_kafka_client_logs

    quiet_kafka_client_logs()
    kafka = kafka_to_inspect(args)

    async def work() -> ClusterView:
        from orderdeck.kafka.clients import check_connection
        from orderdeck.kafka.cluster import describe_cluster

        await check_connection(kafka)  # a bad password or TLS setting: one line within 15 s
        return await describe_cluster(kafka, args.topic, include_internal=not args.exclude_internal)

    view = asyncio.run(work())
    if args.json:
        print(json.dumps(view.to_json(), indent=2))
    else:
        print("\n".join(render(view)))
    return 0


def render(view: ClusterView) -> list[str]:
    """The plain-text report, line by line."""
    lines = [f"cluster {view.cluster_id or '-'}  controller {_node(view.controller_id)}", ""]
    lines += _table(
        ("BROKER", "HOST", "PORT", "RACK", "CONTROLLER"),
        [
            (str(b.id), b.host, str(b.port), b.rack or "-", "yes" if b.is_controller else "")
            for b in view.brokers
        ],
    )
    for topic in view.topics:
        lines += ["", _topic_line(topic)]
        lines += _table(
            ("  PARTITION", "LEADER", "REPLICAS", "ISR", "FLAGS", "LOG-END"),
            [_partition_row(p) for p in topic.partitions],
        )
    if not view.topics:
        lines += ["", "no topics"]
    return lines


def _topic_line(topic: TopicInfo) -> str:
    flags = []
    if topic.internal:
        flags.append("internal")
    if topic.under_replicated:
        flags.append(f"{topic.under_replicated} under-replicated")
    if topic.offline:
        flags.append(f"{topic.offline} offline")
    extra = f"  [{', '.join(flags)}]" if flags else ""
    return (
        f"topic {topic.name}  partitions {len(topic.partitions)}  "
        f"replication {topic.replication_factor}  retention {retention(topic.retention_ms)}  "
        f"cleanup {topic.cleanup_policy or '-'}{extra}"
    )


def _partition_row(p: PartitionInfo) -> tuple[str, ...]:
    flags = [
        name
        for name, on in (("offline", p.offline), ("under-replicated", p.under_replicated))
        if on
    ]
    return (
        f"  {p.partition}",
        _node(p.leader),
        _ids(p.replicas),
        _ids(p.isr),
        ",".join(flags) or "-",
        "-" if p.log_end_offset is None else str(p.log_end_offset),
    )


def retention(ms: int | None) -> str:
    """``7d``, ``12h``, ``90000ms``; ``forever`` for -1, ``-`` when unknown."""
    if ms is None:
        return "-"
    if ms < 0:
        return "forever"
    if ms and ms % _DAY_MS == 0:
        return f"{ms // _DAY_MS}d"
    if ms and ms % _HOUR_MS == 0:
        return f"{ms // _HOUR_MS}h"
    return f"{ms}ms"


def _node(node_id: int) -> str:
    return "none" if node_id < 0 else str(node_id)


def _ids(ids: Sequence[int]) -> str:
    return ",".join(map(str, ids)) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
