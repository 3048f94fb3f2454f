"""Consumer groups: the four service groups, their members, offsets, lag and lag history.

Refreshed from the app's one-per-second poll of ``runtime.group_snapshots`` (standard Kafka
admin calls, the same numbers ``kafka-consumer-groups --describe`` prints). Pause a service
or scale it on the Services screen and watch lag grow and drain, and partitions move
between members, here.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid

from orderdeck.events import PIPELINE_TOPICS
from orderdeck.screens.base import DeckScreen
from orderdeck.screens.reset_offsets import ResetOffsetsScreen
from orderdeck.services import SERVICE_NAMES
from orderdeck.widgets.group_panel import GroupPanel


class GroupsScreen(DeckScreen):
    """A 2x2 grid with one panel per service group."""

    TITLE_TEXT = "Groups"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reset_offsets", "Reset offsets"),
    ]

    def body(self) -> ComposeResult:
        with Grid(id="groups-grid"):
            for index, (topic, service) in enumerate(
                zip(PIPELINE_TOPICS, SERVICE_NAMES, strict=True)
            ):
                yield GroupPanel(topic, f"{topic} · {service}", id=f"group-{index}")

    def refresh_live(self, *, full: bool) -> None:
        if not full:
            return
        names = self.runtime.names
        for panel in self.query(GroupPanel):
            group = names.resolve(panel.group)
            panel.show(
                self.live.snapshots.get(group),
                self.live.lag_history.get(group, ()),
                self.live.lag_times.get(group),
            )

    def action_reset_offsets(self) -> None:
        """Preview and apply an offset reset of a service group (a modal)."""
        groups = list(self.runtime.names.pipeline())
        self.app.push_screen(ResetOffsetsScreen(self.runtime, groups, groups[0]))

    def panel(self, logical_topic: str) -> GroupPanel:
        """The panel of the group consuming ``logical_topic`` (for tests)."""
        for panel in self.query(GroupPanel):
            if panel.group == logical_topic:
                return panel
        raise KeyError(logical_topic)
