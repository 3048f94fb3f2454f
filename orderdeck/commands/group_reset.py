"""``orderdeck groups reset GROUP (--to-earliest|...) [--topic T[:P,...]] [--execute] [--json]``.

Like ``kafka-consumer-groups --reset-offsets``: without ``--execute`` it only prints the plan
(GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET) and changes nothing, so the numbers can be
read before anything moves; a group with active members is refused, naming them. The rules
are in ``orderdeck.kafka.offset_reset``.

``cli.py`` routes ``groups reset ...`` here before the ``groups`` parser sees it (that parser
takes an optional GROUP, so a group literally named ``reset`` is described with
``orderdeck groups -- reset``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orderdeck.commands.common import add_data_dir_flag, add_kafka_flags, kafka_to_inspect
from orderdeck.commands.groups import quiet_kafka_client_logs

if TYPE_CHECKING:
    from orderdeck.kafka.offset_reset import PlannedOffset, ResetTarget

COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``orderdeck groups reset``."""
    parser = argparse.ArgumentParser(
        prog="orderdeck groups reset",
        description="Reset a consumer group's committed offsets. Without --execute only the "
        "plan is printed and nothing changes. A group with active members is refused.",
    )
    parser.add_argument("group", metavar="GROUP", help="the consumer group")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--to-earliest", action="store_true", help="the log-start offsets")
    mode.add_argument("--to-latest", action="store_true", help="the log-end offsets")
    mode.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="the first record at or after this time (e.g. 2026-12-03T05:00:00Z; no zone: UTC)",
    )
    mode.add_argument(
        "--by-duration",
        metavar="DURATION",
        help="the first record at most this long ago (ISO-8601, e.g. PT10M)",
    )
    mode.add_argument(
        "--shift-by",
        metavar="N",
        type=int,
        help="move each committed offset by N (negative: back), within the log",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="T[:P,...]",
        help="only this topic (or these partitions of it); repeatable; default: every "
        "partition the group has committed offsets for",
    )
    parser.add_argument("--execute", action="store_true", help="apply the plan")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_kafka_flags(parser)
    add_data_dir_flag(parser)
    parser.set_defaults(func=run)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the arguments after ``groups reset``."""
    return build_parser().parse_args(list(argv))


def target_from_args(args: argparse.Namespace) -> ResetTarget:
    """The chosen mode as a ResetTarget (a duration is resolved against the clock here)."""
    from orderdeck.kafka.offset_reset import (
        ResetTarget,
        parse_datetime_ms,
        parse_iso_duration,
        target_from_duration,
    )

    if args.to_earliest:
        return ResetTarget("earliest")
    if args.to_latest:
        return ResetTarget("latest")
    if args.to_datetime is not None:
        return ResetTarget("datetime", parse_datetime_ms(args.to_datetime))
    if args.by_duration is not None:
        return target_from_duration(parse_iso_duration(args.by_duration))
    return ResetTarget("shift", int(args.shift_by))


def run(args: argparse.Namespace) -> int:
    """Make the plan, apply it with --execute, print it."""
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.offset_reset import parse_topic_selection, plan_offset_reset

    quiet_kafka_client_logs()
    target = target_from_args(args)
    topics = parse_topic_selection(args.topic)
    kafka = kafka_to_inspect(args)

    async def go() -> list[PlannedOffset]:
        await check_connection(kafka)
        return await plan_offset_reset(
            kafka, args.group, target, topics or None, execute=args.execute
        )

    plan = asyncio.run(go())
    if args.json:
        print(json.dumps(plan_to_json(plan, executed=args.execute), indent=2))
    else:
        print(format_plan(plan))
        if not args.execute:
            print("\nNothing was changed; add --execute to apply this plan.", file=sys.stderr)
    return 0


def plan_to_json(plan: Sequence[PlannedOffset], *, executed: bool) -> dict[str, Any]:
    """The ``--json`` shape: whether it was applied, and the rows."""
    return {
        "executed": executed,
        "partitions": [
            {
                "group": row.group,
                "topic": row.topic,
                "partition": row.partition,
                "currentOffset": row.current,
                "newOffset": row.new,
            }
            for row in plan
        ],
    }


def format_plan(plan: Sequence[PlannedOffset]) -> str:
    """The plan as the official tool prints it: padded columns, '-' for no commit."""
    rows = [
        (
            row.group,
            row.topic,
            str(row.partition),
            "-" if row.current is None else str(row.current),
            str(row.new),
        )
        for row in plan
    ]
    widths = [15, 15, 10, 15]
    for row in rows:
        widths[0] = max(widths[0], len(row[0]))
        widths[1] = max(widths[1], len(row[1]))
    lines = []
    for row in (COLUMNS, *rows):
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=False)]
        lines.append(" ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)
