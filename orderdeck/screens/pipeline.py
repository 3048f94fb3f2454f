"""Pipeline: the four services and their topics as a chain, with what flows and what waits.

The first screen people see. Each arrow is a topic with the events/s flowing into it and
the lag of the group consuming it; each box a service with its counters. On the right:
orders by final status, dead letters per topic, and the latest failures with their reason.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content

from orderdeck.screens.base import DeckScreen
from orderdeck.services import SERVICE_NAMES
from orderdeck.widgets.deck_table import PanelScroll
from orderdeck.widgets.formatting import clock, ellipsize, state_style
from orderdeck.widgets.live_static import LiveStatic
from orderdeck.widgets.pipeline_chain import PipelineChain

FINAL_ORDER = ("confirmed", "rejected", "payment_declined", "cancelled")
FAILURES_SHOWN = 8


class PipelineScreen(DeckScreen):
    """The chain of services and topics, status counts, dead letters and failures."""

    TITLE_TEXT = "Pipeline"

    HOME_FOCUS = "#pipeline-body"

    def body(self) -> ComposeResult:
        # Side by side from 120 columns; below, stacked in a scroll (j/k, pgup/pgdn) with
        # the two small panels next to each other under the chain.
        with PanelScroll(id="pipeline-body"):
            # First: below the chain it was out of sight on an 80x24 terminal.
            yield LiveStatic(id="replication")
            with Horizontal(id="pipeline-main"):
                yield PipelineChain(SERVICE_NAMES, id="chain")
                with Horizontal(id="pipeline-side"):
                    yield LiveStatic(id="status-counts", classes="panel")
                    yield LiveStatic(id="dead-letters", classes="panel")
            yield LiveStatic(id="failures", classes="panel")

    def on_mount(self) -> None:
        self.query_one("#status-counts").border_title = "Orders by status"
        self.query_one("#dead-letters").border_title = "Dead letters"
        self.query_one("#failures").border_title = "Recent failures"
        self.query_one("#replication").display = False  # until partitions lack replicas

    _shown: object = None
    _shown_failures: object = None

    def refresh_live(self, *, full: bool) -> None:
        # Imported here, not at module level: this screen is part of the first frame and
        # the event models take a while to build; by now the runtime has loaded them.
        from orderdeck.events import dlq_topic

        status = self.runtime.status()
        edges = [self.live.edge(service.inbox, service.group) for service in status.services]
        # Everything below is drawn from these two values alone. When an idle pipeline ticks
        # (4 times a second, plus after each group poll) they are equal to last time, and
        # building a dozen lines of content only for LiveStatic to discard them is most of
        # what the control center costs at rest.
        lag_times = [self.live.lag_times.get(service.group) for service in status.services]
        shown = (status, edges, lag_times)
        if shown != self._shown:
            self._shown = shown
            chain = self.query_one(PipelineChain)
            chain.show_api(status.api_url or "API disabled", status.api, status.orders_per_s)
            for service, edge, figures in zip(status.services, edges, lag_times, strict=True):
                chain.show_service(service, edge, figures)
            self._show_counts(status.status_counts)
            self._show_dead_letters([(dlq_topic(s.inbox), s.dead_letters) for s in status.services])
            self._show_replication(status.under_replicated, status.offline_partitions)
        if full:
            self._show_failures()
            # Once per poll, off the loop; a slow store gets one count at a time.
            self.read_store("stuck", self.runtime.store.stuck_count, restart=False)

    #: Orders not final 30 s after acceptance (``store.stuck_count``); None until counted.
    _stuck: int | None = None

    def store_read(self, kind: str, value: object) -> None:
        if kind == "stuck" and isinstance(value, int) and value != self._stuck:
            self._stuck = value
            self._show_counts(self.runtime.status().status_counts)

    def _show_counts(self, counts: dict[str, int]) -> None:
        from orderdeck.events import FINAL_STATUSES

        lines: list[Content] = []
        for name in FINAL_ORDER:
            lines.append(
                Content.assemble(
                    (f"{name:<17}", state_style(name)), (f"{counts.get(name, 0):>8,}", "bold")
                )
            )
        in_flight = sum(n for s, n in counts.items() if s not in FINAL_STATUSES)
        lines.append(Content.assemble((f"{'in flight':<17}", "cyan"), (f"{in_flight:>8,}", "bold")))
        lines.append(
            Content.assemble((f"{'total':<17}", "dim"), (f"{sum(counts.values()):>8,}", "bold"))
        )
        stuck = "-" if self._stuck is None else f"{self._stuck:,}"
        lines.append(
            Content.assemble(
                (f"{'stuck > 30 s':<17}", "red" if self._stuck else "dim"), (f"{stuck:>8}", "bold")
            )
        )
        self.query_one("#status-counts", LiveStatic).show(Content("\n").join(lines))

    def _show_dead_letters(self, rows: list[tuple[str, int]]) -> None:
        lines = [
            Content.assemble(
                (f"{ellipsize(topic, 26):<27}", "dim" if not n else "red"),
                (f"{n:>6,}", "bold red" if n else ""),
            )
            for topic, n in rows
        ]
        self.query_one("#dead-letters", LiveStatic).show(
            Content("\n").join(lines) if lines else Content.styled("none", "dim")
        )

    def _show_replication(self, under_replicated: int, offline: int) -> None:
        """One warning line while partitions lack replicas or a leader; nothing otherwise."""
        line = self.query_one("#replication", LiveStatic)
        line.display = bool(under_replicated or offline)
        if line.display:
            line.show(
                Content.assemble(
                    (
                        f"{under_replicated} under-replicated",
                        "bold yellow" if under_replicated else "",
                    ),
                    " · ",
                    (f"{offline} offline", "bold red" if offline else ""),
                    (" partitions: see Cluster (7)", "dim"),
                )
            )

    def _show_failures(self) -> None:
        try:
            failures = self.runtime.supervisor.recent_failures()[-FAILURES_SHOWN:]
        except Exception:
            failures = []
        if failures == self._shown_failures:
            return
        self._shown_failures = failures
        if not failures:
            self.query_one("#failures", LiveStatic).show(Content.styled("none so far", "dim"))
            return
        lines = []
        for failure in failures[::-1]:
            mark = ("DLQ ", "bold red") if failure.dead_lettered else ("err ", "yellow")
            lines.append(
                Content.assemble(
                    (clock(failure.at)[:8] + " ", "dim"),
                    mark,
                    (f"{failure.service} ", "bold"),
                    (f"p{failure.partition}@{failure.offset} ", "dim"),
                    (ellipsize(failure.reason, 80), ""),
                )
            )
        self.query_one("#failures", LiveStatic).show(Content("\n").join(lines))
