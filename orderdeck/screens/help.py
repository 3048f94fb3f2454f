"""``?``: the keys of the screen on display, in a modal over it.

Built from the screen's binding chain at the moment ``?`` is pressed (the focused widget,
the screen, the app), so it lists exactly what works there, hidden keys included (``j``/
``k``, ``esc``, the F-keys); descriptions are the bindings' own, the same the footer shows.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

#: Widget classes whose own keys are listed, with the heading they get.
FOCUS_TITLES = {
    "DeckTable": "In the table",
    "RowList": "In the table",
    "RecordView": "In the records",
    "OptionList": "In the list",
    "PanelScroll": "In the panels",
    "Input": "In a text field",
    "VerticalScroll": "In the panel",
}
#: Textual's built-in keys that say nothing a reader of this help needs.
SKIPPED_ACTIONS = {
    "focus_next",
    "focus_previous",
    "app.focus_next",
    "app.focus_previous",
    # A row-cursor table scrolls sideways with these; nobody needs them listed.
    "cursor_left",
    "cursor_right",
    "page_left",
    "page_right",
    "scroll_left",
    "scroll_right",
    "screen.copy_text",
    "copy_text",
}
#: In a table, home/end move between columns: not worth listing either.
TABLE_SKIPPED = {"scroll_home", "scroll_end"}


def help_sections(screen: Screen[object]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(heading, [(keys, description)]) for the focused widget, the screen and the app."""
    app = screen.app
    grouped: dict[DOMNode, dict[str, tuple[list[str], str]]] = {}
    for node, binding, _enabled, _ in screen.active_bindings.values():
        if not binding.description or binding.action in SKIPPED_ACTIONS:
            continue
        if isinstance(node, DataTable) and binding.action in TABLE_SKIPPED:
            continue
        # Textual calls the palette "palette"; the key bar says "Commands" (key_bar.py).
        palette = binding.action in {"command_palette", "app.command_palette"}
        description = "Commands" if palette else binding.description
        by_action = grouped.setdefault(node, {})
        keys, _ = by_action.setdefault(binding.action, ([], description))
        shown = app.get_key_display(binding)
        if shown not in keys:  # "plus,equals_sign" with key_display="+" is one key to a reader
            keys.append(shown)
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for node, by_action in grouped.items():
        if node is app:
            title = "Everywhere"
        elif node is screen:
            title = f"{getattr(screen, 'TITLE_TEXT', '') or type(screen).__name__} screen"
        else:
            names = [c.__name__ for c in type(node).__mro__]
            title = next((FOCUS_TITLES[n] for n in names if n in FOCUS_TITLES), "")
            if not title:
                continue
        rows = [(" ".join(keys), description) for keys, description in by_action.values()]
        sections.append((title, rows))
    # The focused widget first, then the screen, then the keys that work everywhere.
    order = {"Everywhere": 2}
    sections.sort(key=lambda s: order.get(s[0], 1 if s[0].endswith(" screen") else 0))
    return sections


class HelpScreen(ModalScreen[None]):
    """The keys that work on the screen below; any of ``esc``, ``?``, ``q`` closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
        #help-box {
            width: 76;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $accent;
            border-title-color: $accent;
            background: $surface;
            padding: 0 1;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", show=False),
    ]

    def __init__(self, title: str, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.title_text = title
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(self._text(), id="help-text")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = f"Keys · {self.title_text}"
        box.border_subtitle = "esc closes"

    def _text(self) -> Content:
        lines: list[Content] = []
        for index, (heading, rows) in enumerate(self.sections):
            if index:
                lines.append(Content(""))
            lines.append(Content.styled(heading, "bold $text-muted"))
            width = max(len(keys) for keys, _ in rows)
            for keys, description in rows:
                lines.append(
                    Content.assemble((f"  {keys:<{width}}  ", "bold $accent"), (description, ""))
                )
        return Content("\n").join(lines)

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)
