"""Waiting helpers for Pilot tests: conditions with a deadline, never sleep-and-hope."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from orderdeck.app import OrderDeckApp
from orderdeck.screens.startup import StartupScreen


async def until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, within: float = 30.0
) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await pilot.pause(0.05)


async def until_ready(pilot: Pilot[Any], within: float = 60.0) -> None:
    """Wait until the runtime started and the start-up screen is gone."""
    app = pilot.app
    assert isinstance(app, OrderDeckApp)
    await until(
        pilot,
        lambda: app.ready and not isinstance(app.screen, StartupScreen),
        "the runtime to start",
        within,
    )
    if app.start_error:
        raise AssertionError(f"start-up failed: {app.start_error}")
