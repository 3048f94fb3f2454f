"""Burrow's health verdicts for a consumer group, from the last commits of each partition.

A total lag hides a partition whose consumer has stopped; Burrow's rules look at each
partition's recent commits instead and name what is wrong. Pure functions over plain data so
each rule is tested with a table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OK = "OK"
WARN = "WARN"
STALL = "STALL"
STOP = "STOP"
REWIND = "REWIND"
ERR = "ERR"
UNKNOWN = "UNKNOWN"

_SEVERITY = {OK: 0, UNKNOWN: 1, WARN: 2, ERR: 3}
_ERRORS = frozenset({STOP, STALL, REWIND})


@dataclass(frozen=True)
class CommitSample:
    """One observation of a partition: the committed offset, its lag and when it was read."""

    committed: int
    lag: int
    at: float


def partition_verdict(commits: Sequence[CommitSample], now: float, window_seconds: float) -> str:
    """Burrow's rules, in his order of precedence, over the commits in the window (oldest first).

    - OK when the lag was 0 at some point (a caught-up consumer is healthy whatever else).
    - REWIND when an offset went backwards (somebody reset it, or a consumer replays).
    - STOP when the newest commit is older than the window spans: nobody commits at all.
    - STALL when the offset never moved while there was lag: the consumer is alive but stuck.
    - WARN when the lag never went down: the consumer moves but falls behind.
    - UNKNOWN with fewer than two observations.
    """
    if not commits:
        return UNKNOWN
    if any(c.lag == 0 for c in commits):
        return OK
    if any(b.committed < a.committed for a, b in itertools.pairwise(commits)):
        return REWIND
    if len(commits) < 2:
        return UNKNOWN
    if now - _last_change(commits) > window_seconds:
        return STOP
    if commits[0].committed == commits[-1].committed:
        return STALL
    if all(b.lag >= a.lag for a, b in itertools.pairwise(commits)):
        return WARN
    return OK


def _last_change(commits: Sequence[CommitSample]) -> float:
    """When the committed offset last moved (the first sample's time if it never did)."""
    moved_at = commits[0].at
    for older, newer in itertools.pairwise(commits):
        if newer.committed != older.committed:
            moved_at = newer.at
    return moved_at


def group_verdict(partition_verdicts: Iterable[str]) -> str:
    """The worst partition's verdict, STOP/STALL/REWIND counting as ERR; OK for no partitions."""
    worst = OK
    for verdict in partition_verdicts:
        as_group = ERR if verdict in _ERRORS else verdict
        if _SEVERITY.get(as_group, 1) > _SEVERITY[worst]:
            worst = as_group
    return worst
