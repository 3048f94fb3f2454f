"""``orderdeck dlq list|redrive``: dead-letter topics, read and acted on from the shell.

``list`` without a topic prints every ``*.dlq`` topic with the records it holds (from its
offsets, the same for every process); with one it prints that DLQ's records: reason, original
topic/partition/offset, service and whether it was redriven. ``redrive`` sends chosen records
back to their original topic (``orderdeck.kafka.dead_letters`` says how and how it remembers),
``--dry-run`` says what it would send and sends nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderdeck.commands.common import add_data_dir_flag, add_kafka_flags, kafka_to_inspect
from orderdeck.commands.groups import quiet_kafka_client_logs

if TYPE_CHECKING:
    from orderdeck.kafka.connection import KafkaConnection
    from orderdeck.kafka.dead_letters import DeadLetter, RedriveReport


def register(subparsers: Any) -> None:
    """Add ``dlq list`` and ``dlq redrive`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq",
        help="list dead-letter topics and their records; redrive records",
        description="Dead-letter topics: counts, records and their reasons, and redriving "
        "records to their original topic.",
    )
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list", help="every DLQ with its record count, or one DLQ's records"
    )
    listing.add_argument("topic", nargs="?", metavar="TOPIC", help="one DLQ (default: all)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_kafka_flags(listing)
    add_data_dir_flag(listing)
    listing.set_defaults(func=run_list)

    again = actions.add_parser("redrive", help="send DLQ records back to their original topic")
    again.add_argument("topic", metavar="TOPIC", help="the DLQ, e.g. order-events.dlq")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--offset",
        nargs="+",
        metavar="P:O",
        help="the records at these partition:offset positions",
    )
    which.add_argument("--all", action="store_true", help="every record of the DLQ")
    again.add_argument(
        "--value-file",
        metavar="F",
        help="send this JSON (a file, or - for stdin) as the value instead (one record only)",
    )
    again.add_argument("--dry-run", action="store_true", help="say what would be sent; send none")
    again.add_argument("--force", action="store_true", help="redrive records redriven before too")
    again.add_argument("--json", action="store_true", help="print JSON")
    add_kafka_flags(again)
    add_data_dir_flag(again)
    again.set_defaults(func=run_redrive)


def run_list(args: argparse.Namespace) -> int:
    """Print the DLQ counts, or one DLQ's records."""
    quiet_kafka_client_logs()
    kafka = kafka_to_inspect(args)
    if args.topic is None:
        counts = asyncio.run(_counts(kafka))
        if args.json:
            print(json.dumps(counts, indent=2))
        else:
            _print_counts(counts)
        return 0
    letters = asyncio.run(_letters(kafka, args.topic))
    if args.json:
        print(json.dumps([d.to_json() for d in letters], indent=2))
    else:
        _print_letters(letters)
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    """Redrive the chosen records and say what was sent and what was skipped."""
    from orderdeck.kafka.dead_letters import check_json, parse_position

    quiet_kafka_client_logs()
    positions = None if args.all else [parse_position(p) for p in args.offset]
    value: bytes | None = None
    if args.value_file is not None:
        where = "stdin" if args.value_file == "-" else args.value_file
        raw = sys.stdin.buffer.read() if args.value_file == "-" else _read_file(args.value_file)
        value = check_json(raw, where)
    kafka = kafka_to_inspect(args)
    report = asyncio.run(
        _redrive(kafka, args.topic, positions, value, dry_run=args.dry_run, force=args.force)
    )
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        _print_report(report)
    # Nothing sent because everything was redriven before: the caller asked for nothing new.
    return 1 if report.skipped and not report.sent else 0


def _read_file(name: str) -> bytes:
    from orderdeck.kafka.dead_letters import DeadLetterError

    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise DeadLetterError(f"cannot read --value-file {name}: {exc.strerror}") from None


async def _counts(kafka: KafkaConnection) -> dict[str, int]:
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.dead_letters import dlq_counts

    await check_connection(kafka)
    return await dlq_counts(kafka)


async def _letters(kafka: KafkaConnection, topic: str) -> list[DeadLetter]:
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.dead_letters import read_dead_letters

    await check_connection(kafka)
    return await read_dead_letters(kafka, topic)


async def _redrive(
    kafka: KafkaConnection,
    topic: str,
    positions: list[tuple[int, int]] | None,
    value: bytes | None,
    *,
    dry_run: bool,
    force: bool,
) -> RedriveReport:
    from orderdeck.kafka.clients import check_connection
    from orderdeck.kafka.dead_letters import redrive

    await check_connection(kafka)
    return await redrive(kafka, topic, positions, value=value, dry_run=dry_run, force=force)


def _print_counts(counts: dict[str, int]) -> None:
    if not counts:
        print("no dead-letter topics")
        return
    width = max(len("TOPIC"), *(len(t) for t in counts))
    print(f"{'TOPIC':<{width}}  RECORDS")
    for topic, count in counts.items():
        print(f"{topic:<{width}}  {count}")


def _print_letters(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no records")
        return
    rows = [("POSITION", "ORIGINAL", "SERVICE", "REDRIVEN", "REASON")]
    for d in letters:
        where = [d.original_partition, d.original_offset]
        origin = ":".join([d.original_topic, *("-" if n is None else str(n) for n in where)])
        redriven = "yes" if d.redriven else "no"
        rows.append((f"{d.partition}:{d.offset}", origin, d.service or "-", redriven, d.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*padded, row[4]]))


def _report_json(report: RedriveReport) -> dict[str, Any]:
    return {
        "dryRun": report.dry_run,
        "sent": [
            {"from": r.source, "topic": r.topic, "partition": r.partition, "offset": r.offset}
            for r in report.sent
        ],
        "skipped": list(report.skipped),
    }


def _print_report(report: RedriveReport) -> None:
    verb = "would redrive" if report.dry_run else "redrove"
    for r in report.sent:
        where = r.topic if r.partition is None else f"{r.topic}:{r.partition}"
        at = "" if r.offset is None else f":{r.offset}"
        print(f"{verb} {r.source} -> {where}{at}")
    for position in report.skipped:
        print(f"skipped {position}: redriven before (--force to send it again)")
    if not report.sent and not report.skipped:
        print("nothing to redrive")
