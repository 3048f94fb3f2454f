"""Build the control center's hidden screens before their first key asks for them.

A Textual mode's screen is composed on its first showing: ~160 ms of widgets, styles (each
new widget class's default CSS makes the stylesheet reparse) and a first layout, all on the
key that asked for it, the slowest keys of the app. Once start-up is over the app is mostly
idle, so it builds those screens then, one per quiet moment, and a screen's first key is a
switch to a screen already built.

This leans on five of Textual's internals, kept in this module alone: ``_init_mode`` (what
``switch_mode`` does for a mode not yet built, minus making it current), ``_screen_stacks``
(which modes are built), ``_css_update_count`` (a screen whose count differs from the
app's is restyled through a full ``refresh_css`` on its next showing; a screen built here
was styled with the current stylesheet, so it is marked up to date), and the screen's
``_refresh_layout`` and ``_compositor.render_full_update`` (a layout and a frame drawn but
not displayed, so that the widgets' line caches are warm when the screen is first shown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

#: How long no key must have come before the next screen is built. A build holds the loop
#: for 100-200 ms, so a key that lands on it waits as long as a first showing would have:
#: at most one such key per screen, and a person's pauses are longer than this.
QUIET_S = 0.2
#: The pause between two builds, so that the screen on display keeps drawing meanwhile.
GAP_S = 0.1


def is_built(app: App[Any], mode: str) -> bool:
    """True once ``mode``'s screen exists (shown, or built here)."""
    return mode in app._screen_stacks


class ScreenPrebuild:
    """Builds an app's hidden screens; ``settle`` lets a build under way finish first."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self._building: asyncio.Future[object] | None = None

    async def build_hidden(self, mode: str) -> bool:
        """Compose ``mode``'s screen without showing it; False if it was built already."""
        app = self.app
        if is_built(app, mode) or not app.is_running:
            # Not while the app closes: it is going through its screen stacks then.
            return False
        building: asyncio.Future[object] = asyncio.ensure_future(app._init_mode(mode))
        self._building = building
        try:
            await building
        finally:
            self._building = None
        screen = app._screen_stacks[mode][0]
        # Styled with the stylesheet as it is now: its first showing needs no refresh_css.
        screen._css_update_count = app._css_update_count
        if app.is_running and not app.is_inline:
            # Laid out and drawn once, off screen: a first showing then draws from the
            # widgets' line caches instead of rendering every widget (Submit: ~60 ms).
            screen._refresh_layout(app.size)
            screen._compositor.render_full_update()
        return True

    async def settle(self, within: float = 2.0) -> None:
        """Wait (up to ``within`` s) for a screen being composed: closing the app under a
        half-composed screen fails its ``on_mount`` (its children are already gone)."""
        if self._building is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._building), within)

    async def build_when_quiet(
        self,
        modes: Iterable[str],
        last_key_at: Callable[[], float],
        clock: Callable[[], float],
        built: Callable[[str], None],
    ) -> None:
        """Build each of ``modes`` not built yet, one at a time, each after ``QUIET_S``
        without a key; ``built(mode)`` is told of each screen built here."""
        for mode in modes:
            await self.wait_quiet(last_key_at, clock)
            if await self.build_hidden(mode):
                built(mode)
            await asyncio.sleep(GAP_S)

    @staticmethod
    async def wait_quiet(last_key_at: Callable[[], float], clock: Callable[[], float]) -> None:
        """Return once ``QUIET_S`` passed without a key (at once if it has)."""
        while True:
            quiet = clock() - last_key_at()
            if quiet >= QUIET_S:
                return
            await asyncio.sleep(QUIET_S - quiet)
