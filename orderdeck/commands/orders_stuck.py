"""``orderdeck orders stuck [--older-than 30s] [--limit N] [--json] [--store URL]``.

Orders not final some time after they were accepted, each with the status and the last event
it reached (the hop it stopped after) and for how long: the first place to look when a
service is down or a dead letter swallowed a step. It reads the store directly rather than
asking the API, so it works while the API is the thing that is down; it never creates a
store that is not there.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderdeck.commands.common import add_data_dir_flag, add_store_flag
from orderdeck.errors import OrderdeckError

if TYPE_CHECKING:
    from orderdeck.store.views import StuckOrder

#: The default bound: an order is stuck 30 s after acceptance (issue 16).
DEFAULT_OLDER_THAN = "30s"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
COLUMNS = ("ORDER", "STATUS", "LAST-EVENT", "STUCK-FOR", "CUSTOMER")


def add_stuck_parser(sub: Any) -> None:
    """Add ``stuck`` to ``orderdeck orders``."""
    stuck: argparse.ArgumentParser = sub.add_parser(
        "stuck", help="orders not final some time after acceptance (reads the store)"
    )
    stuck.add_argument(
        "--older-than",
        default=DEFAULT_OLDER_THAN,
        metavar="DURATION",
        help=f"how long after acceptance an order counts as stuck: 500ms, 30s, 5m, 1h "
        f"(default {DEFAULT_OLDER_THAN})",
    )
    stuck.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    stuck.add_argument("--json", action="store_true", help="print a JSON list")
    add_store_flag(stuck)
    add_data_dir_flag(stuck)


def parse_seconds(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``500ms`` or a bare number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise OrderdeckError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def run_stuck(args: argparse.Namespace) -> int:
    """Read and print the stuck orders."""
    from orderdeck.store import check_reachable, open_store, parse_store_url
    from orderdeck.store.url import default_store_url

    older_than_s = parse_seconds(args.older_than)
    if args.limit < 1:
        raise OrderdeckError("--limit must be at least 1")
    url = parse_store_url(args.store) if args.store else default_store_url(args.data_dir)
    if url.scheme == "sqlite" and not Path(str(url.path)).exists():
        raise OrderdeckError(f"no store at {url.path}; pass --store or --data-dir")
    check_reachable(url)
    store = open_store(url)
    try:
        stuck = store.stuck_orders(older_than_s=older_than_s, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in stuck], indent=2))
    else:
        print(format_stuck(stuck))
    return 0


def format_age(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``: short enough for a column."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_stuck(stuck: list[StuckOrder]) -> str:
    """A padded table, or one line saying there are none."""
    if not stuck:
        return "no stuck orders"
    rows = [
        (s.id, s.status, s.lastEvent or "-", format_age(s.stuckForS), s.customerId) for s in stuck
    ]
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in (COLUMNS, *rows):
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)
