"""The footer: every key that works right now, wrapped onto a second line when it must.

Textual's ``Footer`` is one line that scrolls sideways, so at 80 columns the keys at its end
(often the screen's own) are simply not there. ``KeyBar`` reads the same
``screen.active_bindings`` (so ``check_action`` and dynamic descriptions work as they do for
the Footer), joins a run of bindings sharing a ``Binding.Group`` into one entry (``1…6
Screens``), and wraps between entries instead of cutting. A click on an entry runs its key.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.content import Content
from textual.events import Click
from textual.screen import Screen
from textual.widgets import Static


@dataclass(frozen=True)
class KeyEntry:
    """One entry of the bar: the keys as shown, the description, the key a click presses."""

    keys: str
    description: str
    press: str


def key_entries(screen: Screen[object]) -> list[KeyEntry]:
    """The entries the bar shows for ``screen``, in binding order."""
    app = screen.app
    entries: list[KeyEntry] = []
    group: Binding.Group | None = None
    grouped: list[Binding] = []

    def flush() -> None:
        if not grouped:
            return
        shown = [app.get_key_display(b) for b in grouped]
        keys = f"{shown[0]}…{shown[-1]}" if len(shown) > 2 else "".join(shown)
        label = group.description if group is not None else grouped[0].description
        entries.append(KeyEntry(keys, label, grouped[0].key))
        grouped.clear()

    actions: set[str] = set()
    for _, binding, enabled, _ in screen.active_bindings.values():
        if not binding.show or not enabled or binding.action in actions:
            continue  # one entry per action: "+" and "=" both scale up
        actions.add(binding.action)
        if binding.group is not None and binding.group == group:
            grouped.append(binding)
            continue
        flush()
        group = binding.group
        if group is not None:
            grouped.append(binding)
        else:
            entries.append(KeyEntry(app.get_key_display(binding), binding.description, binding.key))
    flush()
    if app.ENABLE_COMMAND_PALETTE:
        palette = screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
        if palette is not None and palette.enabled:
            entries.append(
                KeyEntry(app.get_key_display(palette.binding), "Commands", palette.binding.key)
            )
    return entries


def layout_lines(entries: list[KeyEntry], width: int) -> list[list[KeyEntry]]:
    """``entries`` broken into lines of at most ``width`` cells (two spaces between)."""
    lines: list[list[KeyEntry]] = [[]]
    used = 0
    for entry in entries:
        size = len(entry.keys) + 1 + len(entry.description)
        if lines[-1] and used + 2 + size > width:
            lines.append([])
            used = 0
        used += size + (2 if lines[-1] else 0)
        lines[-1].append(entry)
    return lines


class KeyBar(Static):
    """A footer that lists every enabled, shown binding and wraps instead of cutting."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._lines: list[list[KeyEntry]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.redraw)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            self.call_after_refresh(self.redraw)

    def on_resize(self) -> None:
        self.redraw()

    @property
    def entries(self) -> list[KeyEntry]:
        """What the bar shows now, line after line (for tests)."""
        return [entry for line in self._lines for entry in line]

    def redraw(self) -> None:
        """Lay the entries out again for the current bindings and width."""
        if not self.is_attached:
            return
        width = max(20, self.content_size.width or self.app.size.width - 2)
        lines = layout_lines(key_entries(self.screen), width)
        if lines == self._lines:
            return
        self._lines = lines
        rows: list[Content] = []
        for line in lines:
            parts: list[tuple[str, str]] = []
            for index, entry in enumerate(line):
                if index:
                    parts.append(("  ", ""))
                parts += [(entry.keys, "bold $accent"), (" " + entry.description, "")]
            rows.append(Content.assemble(*parts))
        self.update(Content("\n").join(rows))

    def on_click(self, event: Click) -> None:
        if not 0 <= event.y < len(self._lines):
            return
        x = event.x - 1
        for entry in self._lines[event.y]:
            size = len(entry.keys) + 1 + len(entry.description)
            if 0 <= x < size:
                self.app.simulate_key(entry.press)
                return
            x -= size + 2
