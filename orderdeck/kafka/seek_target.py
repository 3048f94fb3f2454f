"""Where a tail should start reading, parsed from what a person types.

The Topics screen's seek box (``s``) takes one of five forms, each turned into a target the
tail can position itself at (``TopicTail.seek``):

==================  ==============================================================
``500``             offset 500 in every partition (kept inside each partition's log)
``1:500``           offset 500 in partition 1 (the others are left where they are)
``2026-12-03T08:12:00``, ``2026-12-03 08:12``, ``…Z``, ``…+01:00``
                    the first record at or after that moment (no zone: local time)
``08:12:00``        today at that local time of day
``-10m``            that long ago: ``s``, ``m``, ``h`` or ``d``, combined as ``-1h30m``
==================  ==============================================================

Pure arithmetic on text and a clock handed in, so the parsing is tested exhaustively without
a broker and the screen can use it (it imports no client). A mistake raises
:class:`SeekParseError` whose message names what is wrong and shows a correct form, for the
seek box to show as typed.

A single colon means P:OFFSET, so a time of day needs its seconds (``08:12:00``): ``8:12``
would otherwise be ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

FORMS = "OFFSET, P:OFFSET, a date-time (2026-12-03T08:12:00), HH:MM:SS or -10m"

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_RELATIVE = re.compile(r"-(?:\d+[a-z]+)+")
_RELATIVE_PART = re.compile(r"(\d+)([a-z]+)")
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}:\d{2}(?:\.\d{1,6})?")


class SeekParseError(ValueError):
    """What was typed is not a seek target; the message says why, for the seek box."""


@dataclass(frozen=True)
class SeekOffset:
    """An offset in every partition (``partition`` None) or in one."""

    offset: int
    partition: int | None = None

    def describe(self) -> str:
        """How the status line names where the view starts."""
        if self.partition is None:
            return f"offset {self.offset}"
        return f"p{self.partition} offset {self.offset}"

    def short(self) -> str:
        """The same in a few characters, for narrow terminals."""
        where = "" if self.partition is None else f"p{self.partition}"
        return f"{where}@{self.offset}"


@dataclass(frozen=True)
class SeekTime:
    """The first record at or after ``timestamp_ms`` (epoch milliseconds) in each partition."""

    timestamp_ms: int
    #: What was typed, when it says more than the instant (``-10m``).
    typed: str = ""

    @property
    def moment(self) -> datetime:
        """The instant, in UTC (the tail's TIME column is UTC too)."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def describe(self) -> str:
        """How the status line names where the view starts."""
        stamp = self.moment.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.typed} ({stamp})" if self.typed else stamp

    def short(self) -> str:
        """The same in a few characters, for narrow terminals."""
        return self.typed.removeprefix("today ") or self.moment.strftime("%H:%M:%SZ")


SeekTarget = SeekOffset | SeekTime


def parse_seek(text: str, now: datetime, local: tzinfo | None = None) -> SeekTarget:
    """The target ``text`` names, read against ``now`` (an aware datetime).

    ``local`` is the zone for date-times without one and for HH:MM:SS (default: this
    machine's local time). Raises SeekParseError naming what is wrong.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    typed = text.strip()
    if not typed:
        raise SeekParseError(f"type where to start: {FORMS}")
    if typed.isdigit():
        return SeekOffset(int(typed))
    if typed.startswith("-"):
        return _relative(typed, now)
    if _TIME_OF_DAY.fullmatch(typed):
        return _time_of_day(typed, now, local)
    if typed.count(":") == 1 and "-" not in typed and "T" not in typed.upper():
        return _partition_offset(typed)
    if typed[:4].isdigit() and "-" in typed:
        return _date_time(typed, local)
    raise SeekParseError(f"{typed!r} is not one of {FORMS}")


def _partition_offset(typed: str) -> SeekOffset:
    partition, offset = (part.strip() for part in typed.split(":"))
    if not partition.isdigit():
        raise SeekParseError(
            f"partition {partition!r} is not a partition number (P:OFFSET, e.g. 1:500)"
        )
    if not offset.isdigit():
        raise SeekParseError(f"offset {offset!r} is not an offset (P:OFFSET, e.g. 1:500)")
    return SeekOffset(int(offset), int(partition))


def _relative(typed: str, now: datetime) -> SeekTime:
    body = typed.lower().replace(" ", "")
    if body[1:].isdigit():
        number = body[1:]
        raise SeekParseError(
            f"{typed} needs a unit: -{number}s, -{number}m, -{number}h or -{number}d "
            "(offsets are never negative)"
        )
    if not _RELATIVE.fullmatch(body):
        raise SeekParseError(f"{typed} is not a time ago: a number and a unit, like -10m or -1h30m")
    seconds = 0
    for number, unit in _RELATIVE_PART.findall(body):
        if unit not in _UNIT_SECONDS:
            raise SeekParseError(f"unknown unit {unit!r} in {typed}: use s, m, h or d")
        seconds += int(number) * _UNIT_SECONDS[unit]
    if seconds == 0:
        raise SeekParseError(f"{typed} is no time ago at all; for the newest records press l")
    moment = now - timedelta(seconds=seconds)
    return SeekTime(_epoch_ms(moment), typed=body)


def _time_of_day(typed: str, now: datetime, local: tzinfo | None) -> SeekTime:
    try:
        clock = time.fromisoformat(typed.zfill(8) if len(typed) == 7 else typed)
    except ValueError:
        raise SeekParseError(
            f"{typed} is not a time of day (HH:MM:SS, 00:00:00 to 23:59:59)"
        ) from None
    if local is None:
        today = now.astimezone().date()
        moment = datetime.combine(today, clock).astimezone()
    else:
        today = now.astimezone(local).date()
        moment = datetime.combine(today, clock, tzinfo=local)
    return SeekTime(_epoch_ms(moment), typed=f"today {typed}")


def _date_time(typed: str, local: tzinfo | None) -> SeekTime:
    try:
        moment = datetime.fromisoformat(typed)
    except ValueError as exc:
        reason = str(exc).removeprefix("Invalid isoformat string: ")
        if reason.startswith("'"):  # Python only repeats the text: say what a good one is
            reason = "write it as 2026-12-03T08:12:00 (a zone such as Z or +01:00 is optional)"
        raise SeekParseError(f"{typed} is not a date-time: {reason}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone() if local is None else moment.replace(tzinfo=local)
    return SeekTime(_epoch_ms(moment))


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
