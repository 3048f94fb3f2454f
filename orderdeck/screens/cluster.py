"""The cluster: brokers and the controller, then every partition's leader, replicas, in-sync
replicas and log-end offset, the same numbers ``orderdeck kafka describe`` prints.

The screen asks the runtime for a fresh :class:`ClusterView` every two seconds while it is
shown (a worker; the UI loop never waits on Kafka) and nothing while another screen is.
Under-replicated and offline partitions are flagged, and a leader that moved since the last
refresh is highlighted, so stopping a broker shows its partitions fail over. ``i`` shows or
hides Kafka's internal topics.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Static

from orderdeck.kafka.cluster_model import ClusterView, PartitionInfo
from orderdeck.screens.base import DeckScreen
from orderdeck.widgets.deck_table import DeckTable

#: Seconds between two reads of the cluster while the screen is shown.
REFRESH_S = 2.0
#: A partition is named ``topic-N`` as Kafka's own tools and logs name it (and 80 columns fit).
COLUMNS = ("PARTITION", "LEADER", "REPLICAS", "ISR", "FLAGS", "LOG-END")


class ClusterRead(Message):
    """A read of the cluster finished: the view, or why there is none."""

    def __init__(self, view: ClusterView | None, error: str = "") -> None:
        super().__init__()
        self.view = view
        self.error = error


class ClusterScreen(DeckScreen):
    """Brokers on top, one table row per partition below."""

    TITLE_TEXT = "Cluster"
    HOME_FOCUS = "#cluster-partitions"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("i", "toggle_internal", "Internal topics"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.show_internal = False
        self.view: ClusterView | None = None
        self._leaders: dict[tuple[str, int], int] = {}
        self._moved: set[tuple[str, int]] = set()
        self._asked_at = float("-inf")

    def body(self) -> ComposeResult:
        yield Static("reading the cluster…", id="cluster-brokers")
        yield Static("", id="cluster-summary")
        table = DeckTable(id="cluster-partitions", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table

    def refresh_live(self, *, full: bool) -> None:
        if full and time.monotonic() - self._asked_at >= REFRESH_S:
            self.refresh_cluster()

    def refresh_cluster(self) -> None:
        """Read the cluster now (a worker; the answer arrives as a :class:`ClusterRead`)."""
        self._asked_at = time.monotonic()
        self._read_cluster()

    @work(group="cluster", exclusive=True, exit_on_error=False, name="read the cluster")
    async def _read_cluster(self) -> None:
        try:
            view = await self.runtime.cluster_view()
        except Exception as exc:  # shown on screen; the next refresh tries again
            self.post_message(ClusterRead(None, f"Kafka did not answer: {exc}"))
            return
        self.post_message(ClusterRead(view))

    @on(ClusterRead)
    def _cluster_read(self, message: ClusterRead) -> None:
        if message.view is None:
            self.query_one("#cluster-summary", Static).update(Text(message.error, "red"))
            return
        leaders = message.view.leaders()
        self._moved = {
            tp
            for tp, leader in leaders.items()
            if tp in self._leaders and self._leaders[tp] != leader
        }
        self._leaders = leaders
        self.view = message.view
        self._draw()

    def action_toggle_internal(self) -> None:
        """``i``: show or hide ``__consumer_offsets`` and the other internal topics."""
        self.show_internal = not self.show_internal
        self._draw()

    def _draw(self) -> None:
        view = self.view
        if view is None:
            return
        brokers = Text("brokers ")
        for index, broker in enumerate(view.brokers):
            if index:
                brokers.append(" · ")
            brokers.append(f"{broker.id} ", "bold")
            brokers.append(f"{broker.host}:{broker.port}")
            if broker.rack:
                brokers.append(f" rack {broker.rack}")
            if broker.is_controller:
                brokers.append(" (controller)", "cyan")
        self.query_one("#cluster-brokers", Static).update(brokers)
        topics = [t for t in view.topics if self.show_internal or not t.internal]
        summary = Text(
            f"{len(topics)} topics · {sum(len(t.partitions) for t in topics)} partitions · "
        )
        summary.append(
            f"{view.under_replicated} under-replicated", "yellow" if view.under_replicated else ""
        )
        summary.append(" · ")
        summary.append(f"{view.offline} offline", "bold red" if view.offline else "")
        summary.append(f" · internal {'shown' if self.show_internal else 'hidden'}")
        self.query_one("#cluster-summary", Static).update(summary)
        table = self.query_one("#cluster-partitions", DeckTable)
        wanted = {
            f"{topic.name}/{p.partition}": self._cells(topic.name, p)
            for topic in topics
            for p in topic.partitions
        }
        if list(wanted) == [key.value for key in table.rows]:
            # The same partitions: change the cells in place, so the cursor and the scroll
            # position stay where the reader left them across refreshes.
            for key, cells in wanted.items():
                for column, cell in zip(table.columns, cells, strict=True):
                    if table.get_cell(key, column) != cell:  # rich Text compares its styles too
                        table.update_cell(key, column, cell, update_width=True)
            return
        selected = (
            table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if table.row_count
            else None
        )
        table.clear()
        for key, cells in wanted.items():
            table.add_row(*cells, key=key)
        if selected in wanted:
            table.move_cursor(row=table.get_row_index(selected))

    def _cells(self, topic: str, p: PartitionInfo) -> tuple[str | Text, ...]:
        moved = (topic, p.partition) in self._moved
        leader = Text("none" if p.offline else str(p.leader), "bold red" if p.offline else "")
        if moved:
            leader.stylize("reverse yellow")
        flags = Text("-")
        if p.offline:
            flags = Text("offline", "bold red")
        elif p.under_replicated:
            flags = Text("under-replicated", "yellow")
        if moved:
            flags = Text("leader moved", "yellow") if str(flags) == "-" else flags
        return (
            f"{topic}-{p.partition}",
            leader,
            ",".join(map(str, p.replicas)) or "-",
            ",".join(map(str, p.isr)) or "-",
            flags,
            "-" if p.log_end_offset is None else str(p.log_end_offset),
        )
