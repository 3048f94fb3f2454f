"""Chaos: cause a fault — stop, kill or start a broker, crash or slow a service, poison a
topic — and watch the recovery on a timeline, with the fault's recovery time.

Every action is confirmed in a modal before it acts (``enter`` picks, ``y`` confirms), and
runs through ``runtime.faults`` in a worker: a broker takes seconds to stop or start and
the UI loop must never wait on it. The timeline below the actions is what the runtime's
watcher recorded from its polls (``orderdeck/fault_timeline.py``): the fault, each step of
its recovery (broker gone and back, leaders moved, ISR back to full, groups stable, lag 0,
every order from before the fault final) and ``recovered in N s``. Times are UTC, like
every time the control center shows, and each line says how long after its fault it came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from orderdeck.screens.base import DeckScreen, after_queued_keys
from orderdeck.widgets.deck_table import DeckTable
from orderdeck.widgets.formatting import WIDE_FROM, clock

if TYPE_CHECKING:
    from orderdeck.faults import BrokerRef, TimelineView

#: Seconds between two reads of the brokers' processes while the screen is shown.
REFRESH_S = 2.0
#: The latency a slow-down adds per record, and the steps ``+``/``-`` change it by.
DEFAULT_SLOW_MS = 100
SLOW_STEP_MS = 50
MAX_SLOW_MS = 2000
STEP_STYLES = {"fault": "bold red", "recovered": "bold green", "note": "dim", "step": ""}


@dataclass(frozen=True)
class ChaosAction:
    """One row of the action list: what it does and what the confirm modal asks."""

    key: str
    verb: str
    target: str
    question: str


def actions_for(
    brokers: list[BrokerRef],
    services: list[str],
    slowed: dict[str, float],
    topics: list[str],
    slow_ms: int,
) -> list[ChaosAction]:
    """The actions available now: a running broker can be stopped or killed, a stopped one
    started; a slowed service restored, any other slowed; every pipeline topic poisoned."""
    rows: list[ChaosAction] = []
    for b in brokers:
        if b.running:
            rows.append(
                ChaosAction(
                    f"stop_broker:{b.id}",
                    "stop broker",
                    f"{b.id} ({b.bootstrap})",
                    f"Stop broker {b.id} (a clean shutdown)?",
                )
            )
            rows.append(
                ChaosAction(
                    f"kill_broker:{b.id}",
                    "kill -9 broker",
                    f"{b.id} (pid {b.pid})",
                    f"kill -9 broker {b.id} (pid {b.pid})? No controlled shutdown.",
                )
            )
        else:
            rows.append(
                ChaosAction(
                    f"start_broker:{b.id}",
                    "start broker",
                    f"{b.id} (stopped)",
                    f"Start broker {b.id} again?",
                )
            )
    for name in services:
        rows.append(
            ChaosAction(
                f"crash:{name}",
                "crash service",
                name,
                f"Crash {name}? Its workers raise; the supervisor restarts them.",
            )
        )
        if name in slowed:
            rows.append(
                ChaosAction(
                    f"unslow:{name}",
                    "restore service",
                    f"{name} (slowed by {slowed[name]:g} ms/record)",
                    f"Take the {slowed[name]:g} ms/record away from {name}?",
                )
            )
        else:
            rows.append(
                ChaosAction(
                    f"slow:{name}",
                    "slow service",
                    f"{name} by {slow_ms} ms/record",
                    f"Add {slow_ms} ms of latency per record to {name}?",
                )
            )
    for topic in topics:
        rows.append(
            ChaosAction(
                f"poison:{topic}",
                "poison topic",
                topic,
                f"Produce a record into {topic} that does not decode? "
                "It should land in its dead-letter topic.",
            )
        )
    return rows


#: The action that takes an action's place once it acted on its target.
_REPLACED_BY = {
    "stop_broker": "start_broker",
    "kill_broker": "start_broker",
    "start_broker": "stop_broker",
    "slow": "unslow",
    "unslow": "slow",
}


def _follow(selected: str | None, keys: list[str], row: int) -> int:
    """Where the cursor goes when the actions change: the same action, or else the one
    that replaced it for the same target (killing broker 1 turns its rows into "start
    broker 1", slowing a service its row into "restore"), so a second ``enter`` never
    lands on an unrelated fault — nor on the service's crash row next to it."""
    if selected in keys:
        return keys.index(selected)
    if selected is not None:
        kind, _, target = selected.partition(":")
        successor = f"{_REPLACED_BY.get(kind, kind)}:{target}"
        if successor in keys:
            return keys.index(successor)
        for index, key in enumerate(keys):
            if key.partition(":")[2] == target:
                return index
    return min(row, len(keys) - 1)


class ConfirmScreen(ModalScreen[bool]):
    """Asks before a fault is caused: ``y`` goes ahead, ``n`` or ``esc`` does nothing."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
        #confirm-box {
            width: 64;
            max-width: 100%;
            height: auto;
            border: round $error;
            border-title-color: $error;
            background: $surface;
            padding: 0 1;
        }
        #confirm-hint { color: $text-muted; margin-top: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes, do it"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            yield Static("y does it · n or esc cancels", id="confirm-hint")

    def on_mount(self) -> None:
        self.query_one("#confirm-box").border_title = "Cause a fault?"

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class BrokersRead(Message):
    """The brokers' processes were read (in a worker)."""

    def __init__(self, brokers: list[BrokerRef]) -> None:
        super().__init__()
        self.brokers = brokers


class ChaosScreen(DeckScreen):
    """The actions on top, the timeline of faults and recoveries below."""

    TITLE_TEXT = "Chaos"
    HOME_FOCUS = "#chaos-actions"
    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding: the action table's own enter (select a row) would hide it from
        # the footer; check_action limits it to the action table.
        Binding("enter", "act", "Cause fault…", priority=True),
        Binding("plus,equals_sign", "slow_step(1)", "More latency", key_display="+"),
        Binding("minus", "slow_step(-1)", "Less latency", key_display="-"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.brokers: list[BrokerRef] = []
        #: False until the brokers were read once: the list is drawn whole, not grown under
        #: the cursor (which would follow its row down when the broker rows arrive).
        self.brokers_read = False
        self.slow_ms = DEFAULT_SLOW_MS
        self.actions: list[ChaosAction] = []
        #: What each action finished with, newest last (for the tests and the status line).
        self.done: list[str] = []
        #: The action under way (a broker takes seconds to stop or start): one at a time.
        self.busy: ChaosAction | None = None
        self._asked_at = float("-inf")
        self._shown_entries = -1

    def body(self) -> ComposeResult:
        actions = DeckTable(id="chaos-actions", cursor_type="row")
        # Fixed widths: a row that changes (slow → restore) must not be cut at the width the
        # column had before it (a cleared DataTable keeps its old widths until a later draw).
        actions.add_column("ACTION", width=len("restore service"))
        actions.add_column("TARGET", width=len(f"notification (slowed by {MAX_SLOW_MS} ms/record)"))
        yield actions
        yield Static("", id="chaos-recovery")
        timeline = DeckTable(id="chaos-timeline", cursor_type="row")
        # FAULT: which fault a line belongs to (several may recover at once) and AFTER, how
        # long after that fault it came.
        timeline.add_columns("TIME (UTC)", "FAULT", "AFTER", "EVENT")
        yield timeline

    def on_mount(self) -> None:
        self.query_one("#chaos-actions").border_title = "Faults"
        self.query_one("#chaos-timeline").border_title = "Timeline"

    # ------------------------------------------------------------------ refresh

    def refresh_live(self, *, full: bool) -> None:
        if time.monotonic() - self._asked_at >= REFRESH_S:
            self.refresh_brokers()
        self._draw_actions()
        self._draw_timeline(self.runtime.faults.timeline())

    def refresh_brokers(self) -> None:
        """Read the brokers' processes now (a worker; the answer comes as BrokersRead)."""
        self._asked_at = time.monotonic()
        self._read_brokers()

    @work(group="chaos-brokers", exclusive=True, exit_on_error=False, name="read the brokers")
    async def _read_brokers(self) -> None:
        try:
            brokers = await self.runtime.faults.brokers()
        except Exception:  # the list keeps the last answer; the next refresh asks again
            brokers = self.brokers
        self.post_message(BrokersRead(brokers))

    @on(BrokersRead)
    def _brokers_read(self, message: BrokersRead) -> None:
        self.brokers = message.brokers
        self.brokers_read = True
        self._draw_actions()

    def _draw_actions(self) -> None:
        if not self.brokers_read:
            return
        status = self.runtime.status()
        actions = actions_for(
            self.brokers,
            [s.name for s in status.services],
            self.runtime.faults.slowed(),
            list(self.runtime.names.pipeline()),
            self.slow_ms,
        )
        if actions == self.actions:
            return
        table = self.query_one("#chaos-actions", DeckTable)
        row = table.cursor_row
        selected = self.actions[row].key if 0 <= row < len(self.actions) else None
        table.clear()
        for action in actions:
            table.add_row(action.verb, action.target, key=action.key)
        if actions:
            table.move_cursor(row=_follow(selected, [a.key for a in actions], row))
        self.actions = actions

    def _draw_timeline(self, view: TimelineView) -> None:
        summary = Text("recovery: ")
        if not view.faults:
            summary.append("no fault caused yet — pick one above", "dim")
        shown = 3 if self.app.size.width >= WIDE_FROM else 1
        for index, fault in enumerate(view.faults[-shown:]):
            if index:
                summary.append(" · ")
            summary.append(f"#{fault.fault_id} {fault.label} ")
            took = fault.recovery_s
            if fault.failed is not None:
                summary.append("failed", "red")
            elif took is None:
                summary.append("recovering…", "yellow")
            else:
                summary.append(f"{took:.1f} s", "bold green")
        self.query_one("#chaos-recovery", Static).update(summary)
        if len(view.entries) == self._shown_entries:
            return
        self._shown_entries = len(view.entries)
        started = {f.fault_id: f.at for f in view.faults}
        table = self.query_one("#chaos-timeline", DeckTable)
        table.clear()
        for entry in view.entries:
            began = started.get(entry.fault_id)
            after = "" if began is None or entry.kind == "fault" else f"+{entry.at - began:.1f} s"
            table.add_row(
                clock(datetime.fromtimestamp(entry.at, UTC)),
                f"#{entry.fault_id}" if entry.fault_id else "",
                after,
                Text(entry.text, STEP_STYLES[entry.kind]),
            )
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)  # the newest line in view

    # ------------------------------------------------------------------ actions

    def action_slow_step(self, direction: int) -> None:
        """``+``/``-``: the latency the next slow-down adds per record."""
        self.slow_ms = max(SLOW_STEP_MS, min(MAX_SLOW_MS, self.slow_ms + direction * SLOW_STEP_MS))
        self._draw_actions()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            return self.focused is self.query_one("#chaos-actions")
        return super().check_action(action, parameters)

    def action_act(self) -> None:
        """``enter``: ask about the selected action, and do it once confirmed."""
        after_queued_keys(self, self._ask)

    def _ask(self) -> None:
        table = self.query_one("#chaos-actions", DeckTable)
        if not self.actions or not 0 <= table.cursor_row < len(self.actions):
            return
        if self.busy is not None:
            self.notify(
                f"{self.busy.verb} {self.busy.target} is still under way", severity="warning"
            )
            return
        action = self.actions[table.cursor_row]

        def answered(yes: bool | None) -> None:
            if yes and self.busy is None:
                self.busy = action
                self._do(action)

        self.app.push_screen(ConfirmScreen(action.question), answered)

    @work(group="chaos-act", exit_on_error=False, name="cause a fault")
    async def _do(self, action: ChaosAction) -> None:
        kind, _, target = action.key.partition(":")
        try:
            await self._act(kind, target)
        except Exception as exc:  # said on screen; nothing else to undo
            self.notify(f"{action.verb} {target}: {exc}", severity="error")
            self.done.append(f"failed: {action.key}")
            return
        finally:
            self.busy = None
        self.done.append(action.key)
        self.notify(f"{action.verb} {target}: done — watch the timeline")
        self._asked_at = float("-inf")  # a broker's state changed: read it again now
        self.tick(full=True)

    async def _act(self, kind: str, target: str) -> None:
        """Cause the fault ``kind`` on ``target`` through the runtime."""
        faults = self.runtime.faults
        if kind == "stop_broker":
            self.notify(f"stopping broker {target}…")
            await faults.stop_broker(int(target))
        elif kind == "kill_broker":
            await faults.kill_broker(int(target))
        elif kind == "start_broker":
            self.notify(f"starting broker {target}…")
            await faults.start_broker(int(target))
        elif kind == "crash":
            faults.crash_service(target)
        elif kind == "slow":
            faults.slow_service(target, self.slow_ms)
        elif kind == "unslow":
            faults.unslow_service(target)
        elif kind == "poison":
            await faults.inject_poison(target)
