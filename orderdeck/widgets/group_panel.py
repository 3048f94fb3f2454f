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

from orderdeck.kafka import lag_time, verdicts
from orderdeck.widgets.formatting import count, ellipsize, state_style
from orderdeck.widgets.live_static import LiveStatic

if TYPE_CHECKING:
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.kafka.lag_tracker import GroupLagTime, PartitionLagTime

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


#: Verdict badges: green when healthy, yellow while falling behind, red for Burrow's errors.
VERDICT_STYLES = {
    verdicts.OK: "bold $text on $success",
    verdicts.WARN: "bold $text on $warning",
    verdicts.ERR: "bold $text on $error",
    verdicts.STOP: "bold $text on $error",
    verdicts.STALL: "bold $text on $error",
    verdicts.REWIND: "bold $text on $error",
}


def verdict_badge(verdict: str) -> Content:
    """`` OK `` / `` WARN `` / `` ERR `` on its colour; a dim `` ? `` while still unknown."""
    if verdict == verdicts.UNKNOWN:
        return Content.styled(" ? ", "dim reverse")
    return Content.styled(f" {verdict} ", VERDICT_STYLES.get(verdict, "reverse"))


def eta_text(figures: PartitionLagTime | GroupLagTime | None) -> str:
    """Time to drain: ``0`` caught up, a duration while draining, ``never`` when falling behind."""
    if figures is None:
        return "-"
    if figures.drain_state == lag_time.NOT_DRAINING:
        return "never"
    if figures.drain_state == lag_time.CAUGHT_UP:
        return "0"
    return lag_time.format_duration(figures.drain_seconds)


def describe_rows(
    snapshot: GroupSnapshot, width: int, lag_times: GroupLagTime | None = None
) -> Content:
    """One row per partition, then the members, as ``kafka-consumer-groups`` shows them.

    The partitions come first: they are what a panel is watched for (lag, its age and when
    it clears, and who owns it), and at 80x24 a panel has room for about eight lines. Every
    line fits ``width``: the owner column gives way first, then COMMITTED (LOG-END minus LAG
    says it), then LOG-END, so a header never wraps and LAG-TIME/ETA stay. Member ids are cut
    to their last 6 characters (the distinguishing part).
    """
    show_committed = width >= 2 + 10 + 9 + 7 + 9 + 6
    show_log_end = width >= 2 + 9 + 7 + 9 + 6
    numbers = (
        f"{'P':>2} "
        + (f"{'COMMITTED':>9} " if show_committed else "")
        + (f"{'LOG-END':>8} " if show_log_end else "")
        + f"{'LAG':>6} {'LAG-TIME':>8} {'ETA':>5}"
    )
    owner_width = width - len(numbers) - 2
    show_owner = owner_width >= 8
    lines: list[Content] = [
        Content.styled(
            numbers + ("  OWNER (CLIENT ID)"[: owner_width + 2] if show_owner else ""),
            "bold $text-muted",
        )
    ]
    partition_times = lag_times.partitions if lag_times is not None else {}
    for part in sorted(snapshot.partitions, key=lambda p: (p.topic, p.partition)):
        figures = partition_times.get((part.topic, part.partition))
        seconds = figures.lag_seconds if figures is not None else None
        lines.append(
            Content.assemble(
                (f"{part.partition:>2} ", ""),
                (f"{count(part.committed):>9} " if show_committed else "", ""),
                (f"{count(part.log_end):>8} " if show_log_end else "", ""),
                (f"{count(part.lag):>6} ", "bold yellow" if part.lag else ""),
                (f"{lag_time.format_duration(seconds):>8} ", "yellow" if seconds else ""),
                (f"{ellipsize(eta_text(figures), 5):>5}", ""),
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
        self.lag_times: GroupLagTime | None = None

    def compose(self) -> ComposeResult:
        yield LiveStatic(classes="group-line")
        yield LiveStatic(classes="group-spark")
        yield LiveStatic(classes="group-rows")

    def on_mount(self) -> None:
        self.border_title = self.label

    def show(
        self,
        snapshot: GroupSnapshot | None,
        history: Sequence[int],
        lag_times: GroupLagTime | None = None,
    ) -> None:
        """Redraw from the latest snapshot, the total-lag history and the tracker's figures."""
        self.snapshot = snapshot
        self.lag_times = lag_times
        line = self.query_one(".group-line", LiveStatic)
        width = max(10, self.content_size.width)
        if snapshot is None:
            line.show(Content.styled("waiting for the first snapshot…", "dim"))
            return
        verdict = lag_times.verdict if lag_times is not None else verdicts.UNKNOWN
        oldest = lag_times.lag_seconds if lag_times is not None else None
        head = Content.assemble(
            verdict_badge(verdict),
            (f" ● {snapshot.state}", state_style(snapshot.state)),
            ("  total lag ", "dim"),
            (f"{snapshot.total_lag:,}", "bold yellow" if snapshot.total_lag else "bold green"),
        )
        # Optional tails, most important first: each is shown only while the line still fits.
        extras: list[Content] = []
        if lag_times is not None:
            extras += [
                Content.assemble(("  max ", "dim"), (lag_time.format_duration(oldest), "bold")),
                Content.assemble(("  eta ", "dim"), (eta_text(lag_times), "bold")),
            ]
        # The members are listed below the partitions: their count is the first to go.
        extras.append(Content.assemble(("  members ", "dim"), (str(len(snapshot.members)), "bold")))
        if snapshot.protocol:
            extras.append(Content.styled(f"  {snapshot.protocol}", "dim"))
        for extra in extras:
            if head.cell_length + extra.cell_length <= width:
                head = head + extra
        line.show(head)
        self.query_one(".group-spark", LiveStatic).show(lag_bars(history, width))
        self.query_one(".group-rows", LiveStatic).show(describe_rows(snapshot, width, lag_times))
        # A fixed caption: one that counted seconds would repaint the panel every poll.
        subtitle = "total lag, last 5 min" if history else ""
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
