"""The Topics seek box (``s``): where the tail should start, typed as an offset or a time.

It only parses (``kafka/seek_target.py``, pure) and checks the partition against those the
tail reported; the Topics screen then restarts its tail there. A mistake is shown under the
field, naming what is wrong, and the box stays open with the text as typed so it can be fixed;
the message goes as soon as the text changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from orderdeck.kafka.seek_target import SeekOffset, SeekParseError, SeekTarget, parse_seek

PLACEHOLDER = "offset, P:offset, date-time, HH:MM:SS or -10m"
FORMS_HELP = (
    "500                  offset 500 in every partition\n"
    "1:500                partition 1 from offset 500\n"
    "2026-12-03T08:12:00  local date-time (or end it in Z, +01:00)\n"
    "08:12:00             today, local time\n"
    "-10m  -2h  -30s      that long ago"
)

#: ``12:30`` reads as partition 12, offset 30; when there is no partition 12 it was a time.
_HH_MM = re.compile(r"\d{1,2}:[0-5]\d")


def _local_now() -> datetime:
    return datetime.now().astimezone()


class SeekScreen(ModalScreen[SeekTarget | None]):
    """Ask where to start reading ``topic``; dismissed with the target, or None on ``esc``."""

    DEFAULT_CSS = """
    SeekScreen { align: center middle; }
    #seek-box {
        width: 76;
        max-width: 100%;
        height: auto;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    #seek-input { margin: 1 0 0 0; }
    #seek-help { color: $text-muted; }
    #seek-error { color: $error; height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        topic: str,
        partitions: Sequence[int] = (),
        *,
        now: Callable[[], datetime] = _local_now,
    ) -> None:
        super().__init__()
        self.topic = topic
        #: The topic's partitions as the tail found them (empty: not known, not checked).
        self.partitions = tuple(sorted(partitions))
        self._now = now
        #: The last mistake shown (tests read it).
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="seek-box"):
            yield Input(
                placeholder="offset, P:offset, date-time, HH:MM:SS or -10m", id="seek-input"
            )
            yield Static(FORMS_HELP, id="seek-help")
            yield Static(id="seek-error")

    def on_mount(self) -> None:
        box = self.query_one("#seek-box")
        box.border_title = f"Seek in {self.topic}"
        box.border_subtitle = "enter start here · esc cancel"

    @on(Input.Changed, "#seek-input")
    def _typed(self) -> None:
        if self.error:
            self._show_error("")

    @on(Input.Submitted, "#seek-input")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            target = parse_seek(event.value, self._now())
            self._check_partition(target, event.value.strip())
        except SeekParseError as exc:
            self._show_error(str(exc))
            return
        self.dismiss(target)

    def _check_partition(self, target: SeekTarget, typed: str) -> None:
        if not isinstance(target, SeekOffset) or target.partition is None or not self.partitions:
            return
        if target.partition in self.partitions:
            return
        have = ", ".join(str(p) for p in self.partitions)
        looks_like_clock = _HH_MM.fullmatch(typed) is not None
        hint = f"; a time of day needs its seconds: {typed}:00" if looks_like_clock else ""
        raise SeekParseError(
            f"partition {target.partition} does not exist in {self.topic} (partitions {have}){hint}"
        )

    def _show_error(self, message: str) -> None:
        self.error = message
        self.query_one("#seek-error", Static).update(message)

    def action_cancel(self) -> None:
        """Close without moving the tail."""
        self.dismiss(None)
