"""What every control-center screen shares: the header, the log panel and the footer.

Screens are Textual *modes*, so each keeps its state while another is shown. The app ticks
the active screen only (``refresh_live``), so background screens cost nothing; a screen that
becomes active again is brought up to date at once in ``on_screen_resume``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Mount, ScreenResume
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input

from orderdeck.widgets.key_bar import KeyBar
from orderdeck.widgets.log_panel import LogPanel
from orderdeck.widgets.status_bar import HeaderInfo, StatusBar

if TYPE_CHECKING:
    from orderdeck.screens.protocol import DeckHost
    from orderdeck.widgets.live import LiveModel
    from orderdeck.widgets.runtime_link import RuntimeLike

log = logging.getLogger("orderdeck.screens")


class AfterQueuedKeys(Message):
    """Carries a callback along the path keys take (focused widget → screen → app): the app
    runs it (``OrderDeckApp``) after every key that was ahead of it."""

    def __init__(self, callback: Callable[[], object]) -> None:
        super().__init__()
        self.callback = callback


def after_queued_keys(screen: Screen[Any], callback: Callable[[], object]) -> None:
    """Run ``callback`` once the keys already queued for the focused widget are handled.

    A priority binding runs as soon as its key reaches the app, ahead of the keys before it:
    those travel from the focused widget up to the app, whose bindings (``j`` → cursor down)
    act only when they arrive there. In a burst (a paste, a script, a fast typist over ssh)
    ``j j enter`` acted on the row before the moves and ``…ctrl+s`` sent a field without its
    last characters. The callback takes the keys' path behind them, so it sees what they did.
    """
    # Named as the app's: bubbling stops at a message's sender's child, and a message made in
    # a screen's handler (enter in an Input, a button) would otherwise end at the screen.
    message = AfterQueuedKeys(callback).set_sender(screen.app)
    (screen.focused or screen).post_message(message)


class StoreRead(Message):
    """A store read a screen asked for has its answer (posted by the read's worker)."""

    def __init__(self, kind: str, generation: int, value: object) -> None:
        super().__init__()
        self.kind = kind
        self.generation = generation
        self.value = value


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

    @on(ScreenResume)
    def _keep_styles(self, event: ScreenResume) -> None:
        # Textual restyles every widget of a resumed screen, and a restyled DataTable drops
        # its rendered cells: a switch then redrew the whole table through Rich (most of a
        # key's 60 ms). Nothing restyles while a mode is hidden here; a theme or CSS change
        # is caught by switch_mode's own ``_css_update_count`` check. (Runs before
        # Screen's own handler: subclasses' handlers come first.)
        event.refresh_styles = False

    def on_screen_resume(self) -> None:
        if not self.is_current:
            return  # Textual's resume of a screen built ahead, still hidden (screens.prebuild)
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

    # ------------------------------------------------------------------ store reads

    _read_generation: dict[str, int]
    _reads_in_flight: set[str]

    def read_store(
        self, kind: str, fn: Callable[..., object], *args: Any, restart: bool = True
    ) -> None:
        """Run ``fn(*args)`` on the store's thread and hand the answer to :meth:`store_read`.

        The event loop never waits on the database: the read runs in a worker and its answer
        comes back as a :class:`StoreRead` message. Only the newest request of a ``kind`` is
        shown; an older answer that arrives late is dropped. ``restart=False`` (a periodic
        refresh) leaves a read of the same kind that is still running alone, so a slow store
        gets one read at a time instead of a new one per tick.
        """
        if not hasattr(self, "_read_generation"):
            self._read_generation, self._reads_in_flight = {}, set()
        if not restart and kind in self._reads_in_flight:
            return
        generation = self._read_generation.get(kind, 0) + 1
        self._read_generation[kind] = generation
        self._reads_in_flight.add(kind)
        self.run_worker(
            self._read(kind, generation, fn, args),
            group=f"store-read-{kind}",
            exclusive=True,
            exit_on_error=False,
            name=f"read {kind}",
        )

    async def _read(
        self, kind: str, generation: int, fn: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        try:
            value = await self.runtime.store.run(fn, *args)
        except Exception as exc:  # shown in the log panel; the next refresh asks again
            log.warning("reading the store (%s) failed: %s", kind, exc or type(exc).__name__)
            if self._read_generation.get(kind) == generation:
                self._reads_in_flight.discard(kind)
            return
        self.post_message(StoreRead(kind, generation, value))

    @on(StoreRead)
    def _store_read(self, message: StoreRead) -> None:
        message.stop()
        if self._read_generation.get(message.kind) != message.generation:
            return  # a newer request of this kind was made since: its answer will follow
        self._reads_in_flight.discard(message.kind)
        self.store_read(message.kind, message.value)

    def store_read(self, kind: str, value: object) -> None:
        """Show the answer of the newest :meth:`read_store` of ``kind``."""

    def header(self) -> HeaderInfo | None:
        """The header currently shown (for tests)."""
        return self.query_one(StatusBar).info
