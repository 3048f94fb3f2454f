"""The in-app log panel: where uvicorn, aiokafka and service logs go instead of the terminal."""

from __future__ import annotations

import logging

from rich.text import Text
from textual.widgets import RichLog

from orderdeck.widgets.log_buffer import LogBuffer


class LogPanel(RichLog):
    """Shows the lines of a ``LogBuffer``; pulls new ones when told to catch up.

    Each screen has its own panel (modes keep screens alive), so a panel remembers the last
    line it showed and a hidden or background panel does no work until it is looked at.
    """

    DEFAULT_CSS = """
    LogPanel {
        height: 8;
        border-top: solid $primary 50%;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, buffer: LogBuffer | None, *, id: str | None = None) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, highlight=False, id=id)
        self._buffer = buffer
        self._seen = 0

    def catch_up(self) -> None:
        """Write every line logged since the last call."""
        if self._buffer is None or not self.display:
            return
        lines = self._buffer.since(self._seen)
        if not lines:
            return
        self._seen = lines[-1].seq
        for line in lines[-500:]:
            style = (
                "bold red"
                if line.level >= logging.ERROR
                else "yellow"
                if line.level >= logging.WARNING
                else ""
            )
            self.write(Text(line.text, style=style))
