"""What every control-center screen shares: the header, the log panel and the footer.

Screens are Textual *modes*, so each keeps its state while another is shown. The app ticks
the active screen only (``refresh_live``), so background screens cost nothing; a screen that
becomes active again is brought up to date at once in ``on_screen_resume``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Mount
from textual.screen import Screen
from textual.widgets import Input

from orderdeck.widgets.key_bar import KeyBar
from orderdeck.widgets.log_panel import LogPanel
from orderdeck.widgets.status_bar import HeaderInfo, StatusBar

if TYPE_CHECKING:
    from orderdeck.screens.protocol import DeckHost
    from orderdeck.widgets.live import LiveModel
    from orderdeck.widgets.runtime_link import RuntimeLike


class DeckScreen(Screen[None]):
    """Base of the mode screens: subclasses provide ``body()`` and ``refresh_live()``."""

    TITLE_TEXT: ClassVar[str] = ""
    #: Where ``esc`` from a text field (and arriving on the screen) puts the focus.
    HOME_FOCUS: ClassVar[str | None] = None
    #: Actions whose keys still act while a text field has the focus (ctrl keys, esc);
    #: the screen's letter keys type into the field, so they leave the footer meanwhile.
    FIELD_ACTIONS: ClassVar[frozenset[str]] = frozenset({"leave_field"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave_field", "Leave field", key_display="esc"),
    ]

    @property
    def deck(self) -> DeckHost:
        """The app, as far as a screen may see it."""
        return cast("DeckHost", self.app)

    @property
    def runtime(self) -> RuntimeLike:
        """The runtime the app was given."""
        return self.deck.runtime

    @property
    def live(self) -> LiveModel:
        """The app's rolling picture of groups and rates."""
        return self.deck.live

    def compose(self) -> ComposeResult:
        yield StatusBar(self.TITLE_TEXT)
        yield from self.body()
        panel = LogPanel(self.deck.hooks.log_buffer if self.deck.hooks else None)
        panel.display = self.deck.show_logs
        yield panel
        yield KeyBar()

    def body(self) -> ComposeResult:
        """The screen's own widgets, between the header and the log panel."""
        return ()

    _mounted_once = False

    @on(Mount)
    def _first_tick(self) -> None:
        # Mount arrives after the children are composed; ticks before it have nothing to draw.
        self._mounted_once = True
        self.tick(full=True)

    def on_screen_resume(self) -> None:
        # Coming back must not land in a text field: the digits would type instead of act.
        if isinstance(self.focused, Input):
            self.action_leave_field()
        self.tick(full=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.focused, Input):
            return action in self.FIELD_ACTIONS
        return action != "leave_field"

    def action_leave_field(self) -> None:
        """``esc``: out of the text field, back to the screen's list or table."""
        if self.HOME_FOCUS is not None:
            self.query_one(self.HOME_FOCUS).focus()
        else:
            self.set_focus(None)

    def tick(self, *, full: bool = False) -> None:
        """Called by the app on every refresh tick while this screen is active."""
        if not self._mounted_once:
            return
        header = self.deck.header_info()
        if header is not None:
            self.query_one(StatusBar).show(header)
        panel = self.query_one(LogPanel)
        if panel.display != self.deck.show_logs:
            panel.display = self.deck.show_logs
        panel.catch_up()
        if self.deck.ready:
            self.refresh_live(full=full)

    def refresh_live(self, *, full: bool) -> None:
        """Bring the screen's data up to date; ``full`` after a new poll or on resume."""

    def header(self) -> HeaderInfo | None:
        """The header currently shown (for tests)."""
        return self.query_one(StatusBar).info
