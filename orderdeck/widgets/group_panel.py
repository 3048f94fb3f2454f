"""One consumer group at a glance: state, members, per-partition offsets and a lag sparkline.

The numbers are those of ``kafka-consumer-groups --describe`` (committed offset, log-end
offset, lag, owning member) because they come from the same standard admin calls. The
sparkline is drawn from zero (a flat line means no lag, not "constant lag") with one bar
per time bucket, newest on the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from orderdeck.widgets.formatting import count, ellipsize, state_style
from orderdeck.widgets.live_static import LiveStatic

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot

BARS = "▁▂▃▄▅▆▇█"


def lag_bars(history: Sequence[int], width: int) -> Content:
    """``history`` (oldest first) as ``width`` bars scaled from 0 to its maximum."""
    if width <= 0:
        return Content("")
    points = list(history)
    if len(points) > width:
        # Several samples per bar: show the worst of them, lag spikes must not vanish.
        step = len(points) / width
        points = [
            max(points[int(i * step) : max(int(i * step) + 1, int((i + 1) * step))])
            for i in range(width)
        ]
    top = max(points, default=0)
    cells: list[tuple[str, str]] = [(" " * (width - len(points)), "")]
    for value in points:
        if value <= 0:
            cells.append(("▁", "$success 50%"))
        else:
            level = 1 + int((len(BARS) - 2) * value / top) if top else 0
            cells.append((BARS[min(level, len(BARS) - 1)], "$warning"))
    return Content.assemble(*cells)


def describe_rows(snapshot: GroupSnapshot, width: int) -> Content:
    """One row per partition, then the members, as ``kafka-consumer-groups`` shows them.

    The partitions come first: they are what a panel is watched for (lag, and who owns
    it), and at 80x24 a panel has room for about eight lines. Every line fits ``width``:
    the owner column gives way first, then the members' host and member id, so a header
    never wraps. Member ids are cut to their last 6 characters (the distinguishing part).
    """
    numbers = f"{'P':>2} {'COMMITTED':>9} {'LOG-END':>8} {'LAG':>6}"
    owner_width = width - len(numbers) - 2
    show_owner = owner_width >= 8
    lines: list[Content] = [
        Content.styled(
            numbers + ("  OWNER (CLIENT ID)"[: owner_width + 2] if show_owner else ""),
            "bold $text-muted",
        )
    ]
    for part in sorted(snapshot.partitions, key=lambda p: (p.topic, p.partition)):
        lines.append(
            Content.assemble(
                (f"{part.partition:>2} ", ""),
                (f"{count(part.committed):>9} ", ""),
                (f"{count(part.log_end):>8} ", ""),
                (f"{count(part.lag):>6}", "bold yellow" if part.lag else ""),
                (
                    "  " + ellipsize(part.client_id or "-", owner_width) if show_owner else "",
                    "dim",
                ),
            )
        )
    # Members: CLIENT ID and PARTITIONS always; MEMBER and HOST only when the whole client
    # id still fits beside them (the client id is what the partition rows name).
    natural = max((len(m.client_id) for m in snapshot.members), default=9)
    client_width = max(9, min(26, natural))
    show_member = width >= 8 + client_width + 1 + 10
    show_host = show_member and width >= 8 + client_width + 1 + 11 + 10
    if not show_member:
        client_width = max(8, min(client_width, width - 11))
    header = (
        ("MEMBER  " if show_member else "")
        + f"{'CLIENT ID':<{client_width}} "
        + (f"{'HOST':<10} " if show_host else "")
        + "PARTITIONS"
    )
    lines.append(Content.styled(ellipsize(header, width), "bold $text-muted"))
    for member in snapshot.members:
        owned = ",".join(str(p) for _, p in sorted(member.assignments)) or "none"
        lines.append(
            Content.assemble(
                (f"…{member.member_id[-6:]:<6} " if show_member else "", "dim"),
                (f"{ellipsize(member.client_id, client_width):<{client_width}} ", "bold"),
                (f"{ellipsize(member.host, 10):<10} " if show_host else "", ""),
                (ellipsize(owned, 10), "$accent"),
            )
        )
    if not snapshot.members:
        lines.append(Content.styled("no active members", "dim"))
    return Content("\n").join(lines)


class GroupPanel(Vertical):
    """A bordered panel for one consumer group."""

    DEFAULT_CSS = """
    GroupPanel {
        height: 1fr;
        border: round $primary 50%;
        border-title-color: $accent;
        border-title-style: bold;
        padding: 0 1;
        .group-line { height: 1; }
        .group-spark { height: 1; margin-bottom: 1; }
        .group-rows { height: auto; }
    }
    """

    def __init__(self, group: str, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.group = group
        self.label = label
        self.snapshot: GroupSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield LiveStatic(classes="group-line")
        yield LiveStatic(classes="group-spark")
        yield LiveStatic(classes="group-rows")

    def on_mount(self) -> None:
        self.border_title = self.label

    def show(self, snapshot: GroupSnapshot | None, history: Sequence[int]) -> None:
        """Redraw from the latest snapshot and the group's total-lag history."""
        self.snapshot = snapshot
        line = self.query_one(".group-line", LiveStatic)
        width = max(10, self.content_size.width)
        if snapshot is None:
            line.show(Content.styled("waiting for the first snapshot…", "dim"))
            return
        line.show(
            Content.assemble(
                (f"● {snapshot.state}", state_style(snapshot.state)),
                ("   members ", "dim"),
                (str(len(snapshot.members)), "bold"),
                ("   total lag ", "dim"),
                (f"{snapshot.total_lag:,}", "bold yellow" if snapshot.total_lag else "bold green"),
                (f"   {snapshot.protocol}" if snapshot.protocol else "", "dim"),
            )
        )
        self.query_one(".group-spark", LiveStatic).show(lag_bars(history, width))
        self.query_one(".group-rows", LiveStatic).show(describe_rows(snapshot, width))
        # A fixed caption: one that counted seconds would repaint the panel every poll.
        subtitle = "total lag, last 5 min" if history else ""
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
