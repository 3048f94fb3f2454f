"""The offset-reset modal of the Groups screen: choose where to move, see the plan, apply.

The plan comes from ``runtime.preview_offset_reset`` and the reset from
``runtime.apply_offset_reset`` (which stops this process's consumers of the group, commits and
starts them again), each in a worker so the UI loop never waits on Kafka. Nothing changes
until ctrl+e, and then the plan shown is the plan applied.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from orderdeck.kafka.offset_plan import PlannedOffset, ResetTarget
from orderdeck.screens.base import after_queued_keys
from orderdeck.widgets.runtime_link import RuntimeLike

MODES: tuple[tuple[str, str], ...] = (
    ("to earliest", "earliest"),
    ("to latest", "latest"),
    ("shift by N records", "shift"),
    ("N minutes ago", "duration"),
)


def target_for(mode: str, value: str, now_ms: int | None = None) -> ResetTarget:
    """The target of the chosen mode; ``value`` is N for shift and minutes for duration."""
    if mode in ("earliest", "latest"):
        return ResetTarget(mode)  # type: ignore[arg-type]
    try:
        number = int(value.strip() or "0")
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if mode == "shift":
        return ResetTarget("shift", number)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return ResetTarget("duration", now - number * 60_000)


def plan_text(plan: list[PlannedOffset]) -> str:
    """The plan as the CLI prints it: TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET."""
    lines = [f"{'TOPIC':<28} {'PARTITION':>9} {'CURRENT-OFFSET':>14} {'NEW-OFFSET':>10}"]
    for row in plan:
        current = "-" if row.current is None else str(row.current)
        lines.append(f"{row.topic:<28} {row.partition:>9} {current:>14} {row.new:>10}")
    return "\n".join(lines)


class ResetOffsetsScreen(ModalScreen[bool]):
    """Preview and apply an offset reset of one group; dismisses True once applied."""

    CSS_PATH = Path(__file__).with_name("reset_offsets.tcss")

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+e", "apply", "Apply", priority=True),
    ]

    def __init__(self, runtime: RuntimeLike, groups: list[str], group: str) -> None:
        super().__init__()
        self.runtime = runtime
        self.groups = groups
        self.group = group
        self.plan: list[PlannedOffset] | None = None
        self.applied = False

    def compose(self) -> ComposeResult:
        with Vertical(id="reset-box"):
            yield Select(
                [(g, g) for g in self.groups], value=self.group, allow_blank=False, id="reset-group"
            )
            yield Select(MODES, value="earliest", allow_blank=False, id="reset-mode")
            yield Input(placeholder="N (shift) or minutes (duration)", id="reset-value")
            yield Static("planning…", id="reset-plan")
            yield Static("ctrl+e applies · esc closes", id="reset-hint")

    def on_mount(self) -> None:
        self.query_one("#reset-box").border_title = "Reset offsets"
        self.preview()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "reset-group":
            self.group = str(event.value)
        self.preview()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.preview()

    def _target(self) -> ResetTarget:
        mode = self.query_one("#reset-mode", Select).value
        return target_for(str(mode), self.query_one("#reset-value", Input).value)

    def preview(self) -> None:
        """Ask the runtime for the plan (in a worker; the last request wins)."""
        self.plan = None
        try:
            target = self._target()
        except ValueError as exc:
            self.query_one("#reset-plan", Static).update(str(exc))
            return
        self.query_one("#reset-plan", Static).update("planning…")
        self._preview(target)

    @work(exclusive=True, group="reset-preview")
    async def _preview(self, target: ResetTarget) -> None:
        try:
            plan = await self.runtime.preview_offset_reset(self.group, target)
        except Exception as exc:  # shown to the operator, nothing was changed
            self.query_one("#reset-plan", Static).update(f"cannot reset: {exc}")
            return
        self.plan = plan
        self.query_one("#reset-plan", Static).update(plan_text(plan))

    def action_apply(self) -> None:
        """Apply the plan shown (stops, resets and restarts this process's consumers)."""
        after_queued_keys(self, self._apply_plan)

    def _apply_plan(self) -> None:
        if self.plan is None:
            self.notify("no plan to apply yet", severity="warning")
            return
        self.query_one("#reset-plan", Static).update("applying…")
        self._apply(self.plan)

    @work(exclusive=True, group="reset-apply")
    async def _apply(self, plan: list[PlannedOffset]) -> None:
        try:
            await self.runtime.apply_offset_reset(self.group, plan)
        except Exception as exc:
            self.query_one("#reset-plan", Static).update(f"reset failed: {exc}")
            return
        self.applied = True
        self.notify(f"offsets of {self.group} reset; its consumers are replaying")
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(self.applied)
