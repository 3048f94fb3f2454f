"""Services: each service's state, consumers and counters, with keys to pause and scale.

Pausing a service stops its consumers fetching (they stay in the group, so nothing
rebalances): its group's lag grows on the Groups screen and drains on resume. Scaling runs
1 to 3 consumers in the same group, and the partitions move between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import DataTable

from orderdeck.screens.base import DeckScreen
from orderdeck.screens.protocol import ScaleServiceRequested, ToggleServiceRequested
from orderdeck.widgets.formatting import count, ellipsize, rate, state_style
from orderdeck.widgets.live_static import LiveStatic

if TYPE_CHECKING:
    from orderdeck.services import ServiceStatus

MAX_INSTANCES = 3
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "SERVICE", 13),
    ("state", "STATE", 13),
    ("instances", "CONSUMERS", 9),
    ("processed", "PROCESSED", 10),
    ("rate", "RATE", 9),
    ("errors", "ERRORS", 7),
    ("dead", "DLQ", 6),
    ("duplicates", "REPLAYED", 8),
    ("restarts", "RESTARTS", 8),
    ("lag", "LAG", 7),
)


def _differs(old: Content | str, new: Content | str) -> bool:
    if isinstance(old, Content) and isinstance(new, Content):
        return old.plain != new.plain or old.spans != new.spans
    return old != new


class ServicesScreen(DeckScreen):
    """Table of services; the selected one's details below."""

    TITLE_TEXT = "Services"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("plus,equals_sign", "scale(1)", "Scale +1", key_display="+"),
        Binding("minus", "scale(-1)", "Scale -1", key_display="-"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, list[Content | str]] = {}
        self._targets: dict[str, int] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="services-table", cursor_type="row", zebra_stripes=True)
        yield LiveStatic(id="service-detail")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title, width in COLUMNS:
            table.add_column(title, key=key, width=width)
        self.query_one("#service-detail").border_title = "Details"

    def refresh_live(self, *, full: bool) -> None:
        table = self.query_one(DataTable)
        statuses = self.runtime.status().services
        for status in statuses:
            cells = self._cells(status)
            if status.name not in table.rows:
                table.add_row(*cells, key=status.name)
                continue
            old = self._shown.get(status.name, [])
            for index, ((key, _, _), value) in enumerate(zip(COLUMNS, cells, strict=True)):
                if index >= len(old) or _differs(old[index], value):
                    table.update_cell(status.name, key, value)
        for status in statuses:
            self._shown[status.name] = self._cells(status)
        self._show_detail(statuses)

    def _cells(self, status: ServiceStatus) -> list[Content | str]:
        snapshot = self.live.snapshots.get(status.group)
        lag = snapshot.total_lag if snapshot is not None else None
        return [
            Content.styled(status.name, "bold"),
            Content.styled(f"● {status.state}", state_style(status.state)),
            f"{status.instances:>9}",
            f"{status.processed:>10,}",
            f"{rate(status.rate):>9}",
            Content.styled(f"{status.errors:>7,}", "red" if status.errors else ""),
            Content.styled(f"{status.dead_letters:>6,}", "red" if status.dead_letters else ""),
            f"{status.duplicates:>8,}",
            f"{status.restarts:>8,}",
            Content.styled(f"{count(lag):>7}", "bold yellow" if lag else ""),
        ]

    def selected(self) -> str | None:
        """The name of the service under the cursor."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def _show_detail(self, statuses: tuple[ServiceStatus, ...]) -> None:
        name = self.selected()
        status = next((s for s in statuses if s.name == name), None)
        detail = self.query_one("#service-detail", LiveStatic)
        if status is None:
            detail.show("")
            return
        if detail.border_title != f"{status.name} service":
            detail.border_title = f"{status.name} service"
        detail.show(
            Content.assemble(
                ("inbox ", "dim"),
                (status.inbox, "bold"),
                ("   group ", "dim"),
                (status.group, "bold"),
                ("   consumers ", "dim"),
                (f"{status.instances} of max {MAX_INSTANCES}", "bold"),
                ("\nlast error ", "dim"),
                (ellipsize(status.last_error or "none", 100), "red" if status.last_error else ""),
                ("\n\n", ""),
                ("p", "bold $accent"),
                (" pause/resume (watch the lag on screen 4)   ", ""),
                ("+/-", "bold $accent"),
                (" scale between 1 and 3 consumers in the group", ""),
            )
        )

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail(self.runtime.status().services)

    def action_toggle_pause(self) -> None:
        """Pause the selected service, or resume it."""
        name = self.selected()
        if name is not None:
            self.post_message(ToggleServiceRequested(name))

    def action_scale(self, delta: int) -> None:
        """Add or remove one consumer of the selected service (1..3)."""
        name = self.selected()
        if name is None:
            return
        current = next((s.instances for s in self.runtime.status().services if s.name == name), 1)
        # Repeated presses build on the last request, not on a count that has not moved yet.
        pending = self._targets.get(name)
        base = pending if pending is not None and pending != current else current
        target = max(1, min(MAX_INSTANCES, base + delta))
        if target == current:
            self.notify(f"{name} already has {current} consumer(s) (1..{MAX_INSTANCES})")
            return
        self._targets[name] = target
        self.post_message(ScaleServiceRequested(name, target))
