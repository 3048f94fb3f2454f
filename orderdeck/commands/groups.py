"""``orderdeck groups [GROUP] [--json]``: consumer groups as ``kafka-consumer-groups`` shows them.

The table has the columns of ``kafka-consumer-groups --describe`` and the same numbers (both
come from the same standard admin calls, see ``orderdeck.kafka.admin``); ``--json`` gives the
same data for scripts. Without GROUP every consumer group of the cluster is described.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orderdeck.commands import groups_lag
from orderdeck.commands.common import add_data_dir_flag, add_kafka_flags, kafka_to_inspect
from orderdeck.errors import OrderdeckError

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.connection import KafkaConnection

MISSING = "-"
COLUMNS = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)


def register(subparsers: Any) -> None:
    """Add ``groups`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "groups",
        help="describe consumer groups: members, partitions, offsets and lag",
        description="Describe consumer groups like `kafka-consumer-groups --describe`: per "
        "partition the committed offset, log-end offset, lag and owning member.",
        epilog="`orderdeck groups reset GROUP ...` resets a group's offsets (see its --help).",
    )
    parser.add_argument("group", nargs="?", metavar="GROUP", help="one group (default: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of groups")
    groups_lag.add_lag_flags(parser)
    add_kafka_flags(parser)
    add_data_dir_flag(parser)
    parser.set_defaults(func=run)


def quiet_kafka_client_logs() -> None:
    """Keep aiokafka's connection warnings off the terminal: our error line says it once."""
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False


def run(args: argparse.Namespace) -> int:
    """Describe the group(s) and print them."""
    quiet_kafka_client_logs()
    kafka = kafka_to_inspect(args)
    if args.json or args.lag_time:  # lag seconds, drain and verdicts: commands/groups_lag.py
        shaped = asyncio.run(
            groups_lag.describe_with_lag(kafka, args.group, args.window, snapshot_to_json)
        )
        if args.json:
            print(json.dumps(shaped, indent=2))
        else:
            groups_lag.print_lag_time_tables(shaped, args.window)
        return 0
    print_tables(asyncio.run(_collect(kafka, args.group)))
    return 0


async def _collect(kafka: KafkaConnection, group: str | None) -> list[GroupSnapshot]:
    from orderdeck.kafka.admin import GroupInspector
    from orderdeck.kafka.clients import check_connection

    await check_connection(kafka)  # a bad password or TLS setting: one line within 15 s
    async with GroupInspector(kafka) as inspector:
        names = [group] if group else await inspector.list_groups()
        snapshots = await inspector.describe(names)
    if group and not snapshots[0].exists:
        raise OrderdeckError(f"consumer group {group!r} does not exist")
    return snapshots


def snapshot_to_json(snapshot: GroupSnapshot) -> dict[str, Any]:
    """The ``--json`` shape of one group."""
    return {
        "group": snapshot.group,
        "state": snapshot.state,
        "protocol": snapshot.protocol,
        "totalLag": snapshot.total_lag,
        "members": [
            {
                "memberId": m.member_id,
                "clientId": m.client_id,
                "host": m.host,
                "assignments": [{"topic": t, "partition": p} for t, p in m.assignments],
            }
            for m in snapshot.members
        ],
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "logEnd": p.log_end,
                "lag": p.lag,
                "memberId": p.member_id,
                "clientId": p.client_id,
                "host": p.host,
            }
            for p in snapshot.partitions
        ],
    }


def table_rows(snapshot: GroupSnapshot) -> list[tuple[str, ...]]:
    """The group's rows as the official tool prints them ('-' where there is no value)."""

    def cell(value: object) -> str:
        return MISSING if value is None else str(value)

    return [
        (
            snapshot.group,
            p.topic,
            str(p.partition),
            cell(p.committed),
            cell(p.log_end),
            cell(p.lag),
            cell(p.member_id),
            cell(p.host),
            cell(p.client_id),
        )
        for p in snapshot.partitions
    ]


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    """Columns padded like the official tool: at least 15 wide (PARTITION 10), last unpadded."""
    widths = [15, 15, 10, 15, 15, 15, 15, 15]
    for row in rows:
        for i in (0, 1, 6, 7):
            widths[i] = max(widths[i], len(row[i]))
    lines = []
    for row in (COLUMNS, *rows):
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=False)]
        lines.append(" ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def print_tables(snapshots: Sequence[GroupSnapshot]) -> None:
    """One table per group, with the tool's notes on empty or rebalancing groups (stderr)."""
    for snapshot in snapshots:
        if snapshot.state == "Empty":
            print(f"\nConsumer group '{snapshot.group}' has no active members.", file=sys.stderr)
        elif snapshot.state in ("PreparingRebalance", "CompletingRebalance"):
            print(f"\nWarning: Consumer group '{snapshot.group}' is rebalancing.", file=sys.stderr)
        rows = table_rows(snapshot)
        if rows:
            print()
            print(format_table(rows))
    sys.stdout.flush()
