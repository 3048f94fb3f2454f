"""The pipeline drawn as a chain: API → topic → service → topic → … with live numbers.

Each service box shows its state, instances and counters; each arrow between boxes is the
topic the next service consumes, with the events/s flowing into it, the lag its
consumer group has on it in records and in seconds (the group's oldest partition), and the
group's health verdict as a coloured badge: a stalled edge stands out before its count
grows. The chain is the order's happy path; the boxes' counters include the side paths
(refunds, rejections) too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from orderdeck.kafka import lag_time, verdicts
from orderdeck.widgets.formatting import count, ellipsize, rate, state_style
from orderdeck.widgets.group_panel import verdict_badge
from orderdeck.widgets.live_static import LiveStatic

if TYPE_CHECKING:
    from orderdeck.kafka.lag_tracker import GroupLagTime
    from orderdeck.services import ServiceStatus
    from orderdeck.widgets.live import EdgeStats


class StageBox(LiveStatic):
    """One box of the chain: the API or a service."""

    DEFAULT_CSS = """
    StageBox {
        height: 3;
        border: round $primary 60%;
        border-title-style: bold;
        padding: 0 1;
        &.-running { border: round $success 70%; }
        &.-paused, &.-restarting, &.-starting, &.-waiting { border: round $warning 80%; }
        &.-failed { border: round $error; }
    }
    """

    def show_stage(self, title: str, state: str, body: Content, subtitle: str = "") -> None:
        """Redraw the box; its border colour follows the state.

        Titles and classes are only assigned when they change: each assignment repaints,
        and the app ticks several times a second.
        """
        if self.border_title != title:
            self.border_title = title
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
        wanted = f"-{state}"
        for cls in ("-running", "-paused", "-restarting", "-starting", "-waiting", "-failed"):
            if self.has_class(cls) != (cls == wanted):
                self.set_class(cls == wanted, cls)
        self.show(body)


class EdgeLine(LiveStatic):
    """The arrow between two boxes: topic, events/s into it, consumer lag and its verdict.

    Sized to stay on one line of an 80-column terminal (76 cells with the badge).
    """

    DEFAULT_CSS = """
    EdgeLine { height: 1; padding: 0 0 0 2; }
    """

    def show_edge(self, edge: EdgeStats, lag_times: GroupLagTime | None = None) -> None:
        """Redraw with the edge's numbers; lag is highlighted when records wait."""
        lag_style = "bold yellow" if edge.lag else "green"
        seconds = lag_times.lag_seconds if lag_times is not None else None
        verdict = lag_times.verdict if lag_times is not None else verdicts.UNKNOWN
        badge = verdict_badge(verdict)
        self.show(
            Content.assemble(
                ("▼ ", "bold $accent"),
                (f"{ellipsize(edge.topic, 20):<20}", "bold"),
                ("in ", "dim"),
                (f"{rate(edge.rate):>8}", ""),
                ("  lag ", "dim"),
                (f"{count(edge.lag):>7}", lag_style),
                (f" {lag_time.format_duration(seconds):>6} ", lag_style),
                badge,
                (" " * (6 - len(badge.plain)), ""),
                ("  end ", "dim"),
                (f"{count(edge.log_end):>8}", ""),
            )
        )


class PipelineChain(Vertical):
    """API box, then one (edge, service box) pair per service in journey order."""

    DEFAULT_CSS = """
    PipelineChain { height: auto; }
    """

    def __init__(self, services: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.service_names = tuple(services)

    def compose(self) -> ComposeResult:
        yield StageBox(id="stage-api")
        for name in self.service_names:
            yield EdgeLine(id=f"edge-{name}")
            yield StageBox(id=f"stage-{name}")

    def show_api(self, url: str, state: str, orders_per_s: float | None) -> None:
        """Redraw the API box."""
        self.query_one("#stage-api", StageBox).show_stage(
            "POST /api/v1/orders",
            state,
            Content.assemble(
                (f"● {state}", state_style(state)),
                ("   " + url, ""),
                ("   accepted ", "dim"),
                (rate(orders_per_s), "bold"),
            ),
        )

    def show_service(
        self, status: ServiceStatus, edge: EdgeStats, lag_times: GroupLagTime | None = None
    ) -> None:
        """Redraw one service box and the edge feeding it (with its group's lag figures)."""
        if status.name not in self.service_names:
            return
        self.query_one(f"#edge-{status.name}", EdgeLine).show_edge(edge, lag_times)
        plural = "s" if status.instances != 1 else ""
        body = Content.assemble(
            (f"● {status.state:<10}", state_style(status.state)),
            (f"{status.instances} consumer{plural}   ", ""),
            ("processed ", "dim"),
            (f"{status.processed:>7,}", "bold"),
            ("  ", ""),
            (f"{rate(status.rate):>8}", ""),
            ("   errors ", "dim"),
            (f"{status.errors:,}", "red" if status.errors else ""),
            ("   DLQ ", "dim"),
            (f"{status.dead_letters:,}", "red" if status.dead_letters else ""),
        )
        subtitle = f"restarts {status.restarts}" if status.restarts else ""
        self.query_one(f"#stage-{status.name}", StageBox).show_stage(
            f"{status.name} service", status.state, body, subtitle
        )
