"""Lag in seconds, time to drain and health verdicts for ``orderdeck groups --json``.

Kept apart from ``commands/groups.py``, whose table must stay byte-identical to
``kafka-consumer-groups``: this module only adds fields to the JSON. Two ways to know a lag's
age, and every partition says which one it used (``lagSecondsFrom``):

- ``window`` (the default, 5 s as issue 16 asks): the groups are described about once a
  second for ``--window N`` seconds and the committed offset is placed in the table of
  log-end samples (``kafka.lag_time``); the same samples give the drain rate and Burrow's
  verdict (``kafka.verdicts``).
- ``record-timestamp``: the age of the record waiting at the committed offset
  (``kafka.record_time``) — ``--window 0``, a single pass; also used for a partition whose
  log end did not move during the window (no rate to interpolate with).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orderdeck.errors import OrderdeckError
from orderdeck.kafka import lag_time, verdicts

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupInspector, GroupSnapshot
    from orderdeck.kafka.connection import KafkaConnection

FROM_WINDOW = "window"
#: The issue's default: long enough for a few samples and a drain rate, short for a CLI.
DEFAULT_WINDOW_SECONDS = 5.0
FROM_RECORD = "record-timestamp"
SAMPLE_INTERVAL = 1.0
_DRAIN_ORDER = {lag_time.CAUGHT_UP: 0, lag_time.DRAINING: 1, lag_time.UNKNOWN: 2}
Key = tuple[str, str, int]  # group, topic, partition


@dataclass
class _History:
    """What the sampling saw of one partition: log-end samples and commit observations."""

    samples: lag_time.PartitionSamples = field(default_factory=lag_time.PartitionSamples)
    commits: list[verdicts.CommitSample] = field(default_factory=list)

    def add(self, committed: int | None, log_end: int | None, at: float) -> None:
        if log_end is None:
            return
        self.samples.add(log_end, committed, at)
        if committed is not None:
            self.commits.append(verdicts.CommitSample(committed, max(0, log_end - committed), at))


def add_lag_flags(parser: Any) -> None:
    """``--lag-time`` and ``--window`` on ``orderdeck groups``."""
    parser.add_argument(
        "--lag-time",
        action="store_true",
        help="add LAG-TIME, ETA (time to drain) and VERDICT columns to the table",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW_SECONDS,
        metavar="SECONDS",
        help="with --json or --lag-time: sample the groups for SECONDS to compute lag time, time "
        f"to drain and verdicts from the log-end history (default {DEFAULT_WINDOW_SECONDS:g}; "
        "0: one look, lag time from the timestamp of the record at the committed offset)",
    )


async def describe_with_lag(
    kafka: KafkaConnection,
    group: str | None,
    window: float,
    shape: Callable[[GroupSnapshot], dict[str, Any]],
) -> list[dict[str, Any]]:
    """The groups as ``shape`` gives them, each partition and group with lag seconds and verdict.

    ``shape`` is ``groups.snapshot_to_json``, passed in so the two modules do not import each other.
    """
    from orderdeck.kafka.admin import GroupInspector
    from orderdeck.kafka.clients import check_connection

    await check_connection(kafka)
    histories: dict[Key, _History] = {}
    async with GroupInspector(kafka) as inspector:
        names = [group] if group else await inspector.list_groups()
        snapshots = await _sample(inspector, names, window, histories)
    if group and not snapshots[0].exists:
        raise OrderdeckError(f"consumer group {group!r} does not exist")
    record_ages = await _record_ages(kafka, snapshots, histories)
    out = []
    for snapshot in snapshots:
        shaped = shape(snapshot)
        for part in shaped["partitions"]:
            key = (snapshot.group, part["topic"], part["partition"])
            part.update(_partition_fields(part, histories.get(key), record_ages.get(key)))
        shaped.update(group_fields(shaped["partitions"]))
        out.append(shaped)
    return out


async def _sample(
    inspector: GroupInspector,
    names: Sequence[str],
    window: float,
    histories: dict[Key, _History],
) -> list[GroupSnapshot]:
    """Describe the groups until ``window`` has passed (at least once), recording each partition."""
    deadline = time.monotonic() + window
    while True:
        snapshots = await inspector.describe(names)
        now = time.time()
        for snapshot in snapshots:
            for p in snapshot.partitions:
                key = (snapshot.group, p.topic, p.partition)
                histories.setdefault(key, _History()).add(p.committed, p.log_end, now)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return snapshots
        await asyncio.sleep(min(SAMPLE_INTERVAL, remaining))


async def _record_ages(
    kafka: KafkaConnection, snapshots: Sequence[GroupSnapshot], histories: dict[Key, _History]
) -> dict[Key, float]:
    """Record-timestamp ages for the lagging partitions the window cannot date.

    Groups sharing a partition at the same offset share one fetch; different offsets on one
    partition take one round each (a consumer reads one position per partition at a time).
    """
    from orderdeck.kafka.record_time import record_timestamps

    wanted: dict[tuple[str, int, int], list[Key]] = {}  # (topic, partition, offset) -> groups
    for snapshot in snapshots:
        for p in snapshot.partitions:
            key = (snapshot.group, p.topic, p.partition)
            history = histories.get(key)
            if not p.lag or p.committed is None:
                continue
            if history is not None and history.samples.lag_seconds() is not None:
                continue
            wanted.setdefault((p.topic, p.partition, p.committed), []).append(key)
    rounds: list[dict[tuple[str, int], int]] = []
    for topic, partition, offset in sorted(wanted):
        free = next((r for r in rounds if (topic, partition) not in r), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[(topic, partition)] = offset
    ages: dict[Key, float] = {}
    for offsets in rounds:
        stamps = await record_timestamps(kafka, offsets)
        now = time.time()
        for (topic, partition), stamp in stamps.items():
            keys = wanted[(topic, partition, offsets[(topic, partition)])]
            ages.update(dict.fromkeys(keys, max(0.0, now - stamp)))
    return ages


def _partition_fields(
    part: dict[str, Any], history: _History | None, record_age: float | None
) -> dict[str, Any]:
    """lagSeconds, lagSecondsFrom, drainSeconds, drainState and verdict of one partition."""
    lag = part["lag"]
    seconds: float | None = None
    source: str | None = None
    drain_seconds: float | None = None
    drain_state = lag_time.UNKNOWN
    verdict = verdicts.UNKNOWN
    if history is not None:
        samples = history.samples.samples
        seconds = lag_time.lag_seconds(samples)
        source = FROM_WINDOW if seconds is not None and len(samples) >= 2 else None
        drain_seconds, drain_state = lag_time.drain(samples)
        verdict = _window_verdict(history.commits)
    if lag == 0:
        seconds, drain_seconds, drain_state, verdict = 0.0, 0.0, lag_time.CAUGHT_UP, verdicts.OK
        source = source or FROM_RECORD
    elif source is None and record_age is not None:
        seconds, source = record_age, FROM_RECORD
    return {
        "lagSeconds": None if seconds is None else round(seconds, 3),
        "lagSecondsFrom": source,
        "drainSeconds": None if drain_seconds is None else round(drain_seconds, 3),
        "drainState": drain_state,
        "verdict": verdict,
    }


def _window_verdict(commits: Sequence[verdicts.CommitSample]) -> str:
    """Burrow's verdict judged at the last sample, over the span the samples cover.

    A one-shot run sees only its own window, so it cannot tell how long an offset stood still
    before it started: STOP needs the history of a long-running poller; here a partition whose
    offset never moved while lagging is STALL.
    """
    if not commits:
        return verdicts.UNKNOWN
    span = commits[-1].at - commits[0].at
    return verdicts.partition_verdict(commits, commits[-1].at, span)


def group_fields(partitions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A group's figures: the oldest partition's lag time, the slowest drain, the worst verdict."""
    ages = [p["lagSeconds"] for p in partitions if p["lagSeconds"] is not None]
    sources = sorted({p["lagSecondsFrom"] for p in partitions if p["lagSecondsFrom"]})
    states = [p["drainState"] for p in partitions]
    drains = [p["drainSeconds"] for p in partitions]
    if lag_time.NOT_DRAINING in states:
        state = lag_time.NOT_DRAINING
    else:
        state = max(states, key=lambda s: _DRAIN_ORDER.get(s, 2), default=lag_time.CAUGHT_UP)
    known = state in (lag_time.CAUGHT_UP, lag_time.DRAINING) and None not in drains
    return {
        "lagSeconds": max(ages) if ages else None,
        "lagSecondsFrom": "+".join(sources) if sources else None,
        "drainSeconds": max(drains, default=0.0) if known else None,
        "drainState": state,
        "verdict": verdicts.group_verdict(p["verdict"] for p in partitions),
    }


LAG_TIME_COLUMNS = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "LAG-TIME",
    "ETA",
    "VERDICT",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)
_NARROW = {"PARTITION": 10, "LAG-TIME": 10, "ETA": 13, "VERDICT": 8}


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``2h01m``; ``-`` when unknown (the text the Groups screen shows)."""
    return lag_time.format_duration(seconds)


def lag_time_rows(group: dict[str, Any]) -> list[tuple[str, ...]]:
    """A shaped group's rows for ``--lag-time``: the tool's columns plus LAG-TIME, ETA, VERDICT."""

    def cell(value: object) -> str:
        return "-" if value is None else str(value)

    rows: list[tuple[str, ...]] = []
    for p in group["partitions"]:
        eta = lag_time.NOT_DRAINING if p["drainState"] == lag_time.NOT_DRAINING else None
        rows.append(
            (
                group["group"],
                p["topic"],
                str(p["partition"]),
                cell(p["committed"]),
                cell(p["logEnd"]),
                cell(p["lag"]),
                duration(p["lagSeconds"]),
                eta or duration(p["drainSeconds"]),
                p["verdict"],
                cell(p["memberId"]),
                cell(p["host"]),
                cell(p["clientId"]),
            )
        )
    return rows


def format_lag_time_table(rows: Sequence[tuple[str, ...]]) -> str:
    """Padded like the official tool's table (at least 15 wide, growing to fit, last unpadded)."""
    widths = [_NARROW.get(name, 15) for name in LAG_TIME_COLUMNS[:-1]]
    for row in rows:
        for i, value in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(value))
    lines = []
    for row in (LAG_TIME_COLUMNS, *rows):
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=False)]
        lines.append(" ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def lag_time_note(groups: Sequence[dict[str, Any]], window: float) -> str:
    """The line (for stderr) that says how the lag times were measured."""
    if window > 0:
        how = f"log-end samples over {window:g} s (record timestamps where the log end stood still)"
    else:
        how = "the timestamps of the records at the committed offsets"
    verdicts_note = "" if window > 0 else "; verdicts need --window N"
    return f"lag time from {how}{verdicts_note}" if groups else ""


def print_lag_time_tables(groups: Sequence[dict[str, Any]], window: float) -> None:
    """One ``--lag-time`` table per group, then the note on the method (stderr)."""
    for group in groups:
        rows = lag_time_rows(group)
        if rows:
            print()
            print(format_lag_time_table(rows))
    note = lag_time_note(groups, window)
    if note:
        print(f"\n{note}", file=sys.stderr)
    sys.stdout.flush()
