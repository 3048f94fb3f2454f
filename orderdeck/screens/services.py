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
from orderdeck.widgets.deck_table import DeckTable
from orderdeck.widgets.formatting import WIDE_FROM, count, ellipsize, rate, state_style
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


#: Below 120 columns: the same ten columns, abbreviated where the word is not the point, and
#: no cell padding (the widths include the gap), so REPLAYED, RESTARTS and LAG stay.
NARROW_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "SERVICE", 13),
    ("state", "STATE", 12),
    ("instances", "CONS", 5),
    ("processed", "EVENTS", 8),
    ("rate", "RATE", 7),
    ("errors", "ERR", 4),
    ("dead", "DLQ", 4),
    ("duplicates", "REPLAYED", 9),
    ("restarts", "RESTARTS", 9),
    ("lag", "LAG", 6),
)
NUMERIC = frozenset(
    {"instances", "processed", "rate", "errors", "dead", "duplicates", "restarts", "lag"}
)


def _differs(old: Content | str, new: Content | str) -> bool:
    if isinstance(old, Content) and isinstance(new, Content):
        return old.plain != new.plain or old.spans != new.spans
    return old != new


class ServicesScreen(DeckScreen):
    """Table of services; the selected one's details below."""

    TITLE_TEXT = "Services"

    HOME_FOCUS = "#services-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        # One key, two labels: the footer says what ``p`` does to the selected service.
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("plus,equals_sign", "scale(1)", "Scale +1", key_display="+"),
        Binding("minus", "scale(-1)", "Scale -1", key_display="-"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, list[Content | str]] = {}
        self._targets: dict[str, int] = {}

    def body(self) -> ComposeResult:
        yield DeckTable(id="services-table", cursor_type="row", zebra_stripes=True)
        yield LiveStatic(id="service-detail")

    def on_mount(self) -> None:
        self._columns_for(self.app.size.width)
        self.query_one("#service-detail").border_title = "Details"

    _columns: tuple[tuple[str, str, int], ...] = COLUMNS
    _wide: bool | None = None

    def on_resize(self) -> None:
        self._columns_for(self.size.width)

    def _columns_for(self, width: int) -> None:
        wide = width >= WIDE_FROM
        if wide == self._wide:
            return
        self._wide = wide
        self._columns = COLUMNS if wide else NARROW_COLUMNS
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.cell_padding = 1 if wide else 0
        for key, title, size in self._columns:
            # Unpadded numbers are right-aligned: so are their titles, a space before the next.
            shown = title.rjust(size - 1) + " " if not wide and key in NUMERIC else title
            table.add_column(shown, key=key, width=size)
        self._shown.clear()
        if self._mounted_once and self.deck.ready:
            self.refresh_live(full=True)

    def refresh_live(self, *, full: bool) -> None:
        table = self.query_one(DataTable)
        statuses = self.runtime.status().services
        for status in statuses:
            cells = self._cells(status)
            if status.name not in table.rows:
                table.add_row(*cells, key=status.name)
                continue
            old = self._shown.get(status.name, [])
            for index, ((key, _, _), value) in enumerate(zip(self._columns, cells, strict=True)):
                if index >= len(old) or _differs(old[index], value):
                    table.update_cell(status.name, key, value)
        for status in statuses:
            self._shown[status.name] = self._cells(status)
        self._show_detail(statuses)
        state = self._selected_state()
        if state != self._bound_state:
            self._bound_state = state
            self.refresh_bindings()

    def _cells(self, status: ServiceStatus) -> list[Content | str]:
        snapshot = self.live.snapshots.get(status.group)
        lag = snapshot.total_lag if snapshot is not None else None
        # Each width is its column's less one: a gap before the next column when unpadded.
        w = {key: size - (0 if self._wide else 1) for key, _, size in self._columns}
        return [
            Content.styled(ellipsize(status.name, w["name"]), "bold"),
            Content.styled(ellipsize(f"● {status.state}", w["state"]), state_style(status.state)),
            f"{status.instances:>{w['instances']}}",
            f"{status.processed:>{w['processed']},}",
            f"{rate(status.rate):>{w['rate']}}",
            Content.styled(f"{status.errors:>{w['errors']},}", "red" if status.errors else ""),
            Content.styled(
                f"{status.dead_letters:>{w['dead']},}", "red" if status.dead_letters else ""
            ),
            f"{status.duplicates:>{w['duplicates']},}",
            f"{status.restarts:>{w['restarts']},}",
            Content.styled(f"{count(lag):>{w['lag']}}", "bold yellow" if lag else ""),
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

    _bound_state: str | None = None

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail(self.runtime.status().services)
        self._bound_state = self._selected_state()
        self.refresh_bindings()

    def _selected_state(self) -> str | None:
        name = self.selected()
        return next((s.state for s in self.runtime.status().services if s.name == name), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "resume"):
            if not super().check_action(action, parameters):
                return False
            paused = self._selected_state() == "paused"
            return paused if action == "resume" else not paused
        return super().check_action(action, parameters)

    def action_pause(self) -> None:
        """Pause the selected service (its consumers stay in the group)."""
        self.action_toggle_pause()

    def action_resume(self) -> None:
        """Resume the selected paused service."""
        self.action_toggle_pause()

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
