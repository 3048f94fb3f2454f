"""The start-up (and shut-down) view: what the runtime is doing while the system comes up.

Starting a cold local Kafka takes seconds; this screen appears with the first frame and
shows each step as the runtime reports it, the latest log lines, and on failure the reason
and how to leave. It is a modal over the Pipeline screen, dismissed once everything runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen

from orderdeck.widgets.live_static import LiveStatic
from orderdeck.widgets.log_panel import LogPanel

if TYPE_CHECKING:
    from orderdeck.runtime import StartupStep
    from orderdeck.screens.protocol import DeckHost

STEPS: tuple[tuple[str, str], ...] = (
    ("kafka", "Kafka"),
    ("topics", "Topics"),
    ("api", "Order API"),
    ("services", "Services"),
)
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ICONS = {"pending": ("·", "dim"), "done": ("✔", "green"), "failed": ("✘", "bold red")}


class StartupScreen(ModalScreen[None]):
    """Start-up steps with their state, then dismissed; or the error and a way out."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+l", "app.toggle_logs", "Logs", show=False),
    ]

    def __init__(self, *, stopping: bool = False) -> None:
        super().__init__()
        self.steps: dict[str, StartupStep] = {}
        self.error: str | None = None
        self._stopping = stopping

    @property
    def deck(self) -> DeckHost:
        """The app, as far as a screen may see it."""
        return cast("DeckHost", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="startup-box"):
            yield LiveStatic(id="startup-title")
            for name, _ in STEPS:
                yield LiveStatic(id=f"step-{name}", classes="step")
            yield LiveStatic(id="startup-note")
            yield LogPanel(self.deck.hooks.log_buffer if self.deck.hooks else None)
        self._started_at = self.deck.clock()

    def on_mount(self) -> None:
        self.tick()

    def show_step(self, step: StartupStep) -> None:
        """Record a step reported by the runtime."""
        self.steps[step.name] = step
        self.tick()

    def finished(self) -> None:
        """Everything runs: get out of the way (the app hears it through its callback)."""
        if not self._stopping and self.is_attached:
            self.dismiss()

    def failed(self, message: str) -> None:
        """Start-up failed: keep the screen, show why and how to leave."""
        self.error = message
        self.tick()

    def stopping(self) -> None:
        """The user quit (possibly during start-up): say what is being stopped."""
        self._stopping = True
        self.tick()

    def tick(self) -> None:
        """Redraw the steps (called by the app's tick)."""
        if not self.is_mounted:
            return
        now = self.deck.clock()
        elapsed = now - self._started_at
        # The spinner follows the clock (not a tick count) so a fixed test clock freezes it.
        frame = int(now * 8)
        if self._stopping:
            title = "Stopping: services commit their offsets, the API drains, Kafka stops…"
        elif self.error:
            title = "orderdeck could not start"
        else:
            title = f"Starting orderdeck… {elapsed:4.1f} s"
        self.query_one("#startup-title", LiveStatic).show(Content.styled(title, "bold"))
        for name, label in STEPS:
            step = self.steps.get(name)
            state = step.state if step else "pending"
            if state == "running":
                icon, style = SPINNER[frame % len(SPINNER)], "yellow"
            else:
                icon, style = ICONS.get(state, ("?", ""))
            message = step.message if step else "waiting"
            line = self.query_one(f"#step-{name}", LiveStatic)
            if line.display == self._stopping:
                line.display = not self._stopping
            line.show(
                Content.assemble((f" {icon} ", style), (f"{label:<10}", "bold"), (message, "dim"))
            )
        note = self.query_one("#startup-note", LiveStatic)
        if self.error:
            note.show(
                Content.assemble(
                    ("\n" + self.error + "\n\n", "red"),
                    ("Press q to quit (the log below has details).", "bold"),
                )
            )
        else:
            note.show("")
        self.query_one(LogPanel).catch_up()
