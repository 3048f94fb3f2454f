"""``orderdeck tail TOPIC``: follow a topic from a shell, like ``kcat -C``.

The tail never joins a consumer group (see ``orderdeck.kafka.tail``), so it is safe to point
at a running pipeline. With ``--json`` each record is one JSON object on its own line, flushed
at once so ``| jq`` or ``| grep`` see records as they arrive; ``--exit-at-end`` stops once every
partition is caught up, like ``kcat -e``. ``--from`` starts at an offset or a time, in the forms
the Topics screen's seek box takes (``kafka/seek_target.py``): ``500``, ``1:500``, a date-time,
``08:12:00`` or ``-10m``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from orderdeck.commands.common import add_data_dir_flag, add_kafka_flags, kafka_to_inspect
from orderdeck.commands.groups import quiet_kafka_client_logs
from orderdeck.kafka.seek_target import SeekParseError, SeekTarget, parse_seek

if TYPE_CHECKING:
    from orderdeck.kafka.connection import KafkaConnection
    from orderdeck.kafka.tail import TailRecord

BATCH = 500


def register(subparsers: Any) -> None:
    """Add ``tail`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tail",
        help="print a topic's records as they arrive (never joins a consumer group)",
        description="Follow topics from their end (or beginning) without joining a consumer "
        "group. Ctrl-C stops.",
    )
    parser.add_argument("topics", nargs="+", metavar="TOPIC", help="topic(s) to follow")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record, not the end"
    )
    start.add_argument(
        "--from",
        dest="start_at",
        metavar="WHERE",
        type=seek_argument,
        help="start at OFFSET (every partition), P:OFFSET (that partition; the others from "
        "their end), a date-time (2026-12-03T08:12:00, local unless it ends in Z or +01:00), "
        "HH:MM:SS (today) or a time ago, written with = so it is not read as an option: "
        "--from=-10m (s, m, h, d)",
    )
    parser.add_argument("--order", metavar="ID", help="only records of this order id")
    parser.add_argument("--type", metavar="T", help="only events of this type (e.g. OrderPlaced)")
    parser.add_argument("--json", action="store_true", help="one JSON object per record per line")
    parser.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit once every partition is caught up (like kcat -e)",
    )
    add_kafka_flags(parser)
    add_data_dir_flag(parser)
    parser.set_defaults(func=run)


def seek_argument(text: str) -> SeekTarget:
    """``--from``'s value, read against the clock now; a mistake is argparse's usage error."""
    try:
        return parse_seek(text, datetime.now().astimezone())
    except SeekParseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Tail until Ctrl-C, the end of the topics (--exit-at-end) or a closed pipe."""
    quiet_kafka_client_logs()
    kafka = kafka_to_inspect(args)
    try:
        asyncio.run(_tail(args, kafka, sys.stdout))
    except BrokenPipeError:
        # The reader went away (`| head`): that is a normal way to stop. Point stdout at
        # /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def matches(record: TailRecord, order: str | None, event_type: str | None) -> bool:
    """Whether a record passes the --order and --type filters."""
    if order is not None and record.order_id != order:
        return False
    return event_type is None or record.event_type == event_type


def format_human(record: TailRecord) -> str:
    """One line per record: time, topic/partition@offset, type, order id, value."""
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    return (
        f"{at} {record.topic}/{record.partition}@{record.offset} "
        f"{record.event_type or '-'} order={record.order_id or '-'} {record.value_text()}"
    )


def format_json(record: TailRecord) -> str:
    """One compact JSON object (see TailRecord.to_json_dict)."""
    return json.dumps(record.to_json_dict(), ensure_ascii=False, separators=(",", ":"))


async def _tail(args: argparse.Namespace, kafka: KafkaConnection, out: TextIO) -> None:
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.tail import TopicTail

    await check_connection(kafka)  # a bad password or TLS setting: one line within 15 s
    render = format_json if args.json else format_human
    start_at: SeekTarget | None = args.start_at
    async with TopicTail(kafka, args.topics, from_beginning=args.from_beginning) as tail:
        if start_at is not None:
            await tail.seek(start_at)
        while True:
            batch = await tail.next_batch(max_records=BATCH, timeout_ms=200)
            for record in batch:
                if matches(record, args.order, args.type):
                    out.write(render(record) + "\n")
                    out.flush()
            # A full batch means more is waiting: only a short one can be the end.
            if args.exit_at_end and len(batch) < BATCH and await tail.caught_up():
                return
