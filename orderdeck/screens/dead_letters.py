"""Dead letters: the records of one DLQ (or every pipeline DLQ) and their redrive.

Reached with ``d`` on Topics. Reading and redriving go through the runtime
(``runtime.dead_letters`` / ``runtime.redrive``) in workers, so the UI loop never waits on Kafka
and this module never imports the Kafka code; ``DeadLetter`` is a plain data model. An edited
value is validated as JSON in the modal, so a redrive never sends a value the services would
dead-letter again for the same reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static, TextArea

from orderdeck.screens.base import DeckScreen, after_queued_keys
from orderdeck.widgets.deck_table import DeckTable

if TYPE_CHECKING:
    from orderdeck.kafka.dead_letters import DeadLetter


def json_error(text: str, position: str) -> str | None:
    """Why ``text`` is not a JSON value, naming the record's ``position``; None when it is."""
    try:
        json.loads(text)
    except ValueError as exc:
        return f"{position}: not JSON: {exc}"
    return None


class EditValueScreen(ModalScreen[bytes | None]):
    """Edit one dead letter's value; dismissed with the new value only when it is JSON."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, position: str, value: str) -> None:
        super().__init__()
        self.position = position
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Static(f"Value of {self.position} (ctrl+s save, esc cancel)")
            yield TextArea(self._value, id="edit-value")
            yield Static(id="edit-error")

    def action_save(self) -> None:
        after_queued_keys(self, self._save)

    def _save(self) -> None:
        text = self.query_one("#edit-value", TextArea).text
        error = json_error(text, self.position)
        if error is not None:
            self.query_one("#edit-error", Static).update(error)
            return
        self.dismiss(text.encode())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; a redrive sends records, so it is asked first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            yield Static("y: yes   n: no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


#: How much of a dead letter's value the detail box shows (``e`` edits the whole of it).
VALUE_PREVIEW_CHARS = 400


def _field(name: str, text: str | Content) -> Content:
    return Content.assemble((f"{name:<8}", "bold"), text)


def _printable(raw: bytes | None, limit: int = 120) -> str:
    """Bytes as text a terminal shows as they are: control characters escaped, long cut."""
    if raw is None:
        return "(none)"
    text = raw.decode(errors="replace")
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _escape(char: str) -> str:
    """A control character as Python writes it in a string: ``\\n``, ``\\x1b``."""
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\x{ord(char):02x}"


class DeadLettersScreen(DeckScreen):
    """A table of dead letters; select, edit, redrive.

    A deck screen like the others, though pushed over Topics: the same header, key bar (with
    ``?`` and the screen keys) and ``j``/``k``/``g``/``G`` in its table.
    """

    CSS_PATH = "dead_letters.tcss"
    TITLE_TEXT = "Dead letters"
    HOME_FOCUS = "#dlq-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_row", "Select", priority=True),
        Binding("a", "select_all", "All"),
        Binding("e", "edit", "Edit"),
        Binding("r", "redrive", "Redrive"),
        # One key, two labels: the footer says what ``F`` will do.
        Binding("F", "force(True)", "Force"),
        Binding("F", "force(False)", "No force"),
        Binding("R", "reload", "Reload"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, topic: str | None) -> None:
        super().__init__()
        #: The DLQ shown, or None for every pipeline DLQ.
        self.topic = topic
        self.letters: list[DeadLetter] = []
        self.selected: set[str] = set()
        #: Edited values by position; a record with an edit is redriven alone with it.
        self.edits: dict[str, bytes] = {}
        self.force = False
        self.message = "loading…"
        #: True once the first load finished (tests wait for it).
        self.loaded = False

    def body(self) -> ComposeResult:
        yield Static(id="dlq-state")
        yield DeckTable(id="dlq-table", cursor_type="row")
        yield Static(id="dlq-detail")

    def on_mount(self) -> None:
        table = self.query_one(DeckTable)
        # REASON last: it can be a long parser message, and the columns after it would be
        # pushed off the screen (a DataTable column is as wide as its widest cell).
        # The columns of ``orderdeck dlq list``.
        table.add_columns("", "POSITION", "ORIGINAL", "SERVICE", "REDRIVEN", "REASON")
        self.action_reload()

    # ------------------------------------------------------------------ view

    def _show(self) -> None:
        table = self.query_one(DeckTable)
        row = table.cursor_row
        table.clear()
        for d in self.letters:
            original = f"{d.original_topic}:{d.original_partition}:{d.original_offset}"
            mark = ("*" if d.position in self.selected else " ") + (
                "e" if d.position in self.edits else " "
            )
            redriven = "yes" if d.redriven else "no"
            table.add_row(mark, d.position, original, d.service, redriven, d.reason, key=d.position)
        if self.letters:
            table.move_cursor(row=min(row, len(self.letters) - 1))
        self._show_state()
        self._show_detail()

    @on(DataTable.RowHighlighted, "#dlq-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The highlighted record in full: the table cuts its reason at the screen's edge."""
        detail = self.query_one("#dlq-detail", Static)
        letter = self._current()
        detail.display = letter is not None
        if letter is None:
            return
        preview = _printable(self.edits.get(letter.position, letter.value), VALUE_PREVIEW_CHARS)
        if letter.position in self.edits:
            shown_value = Content.assemble(("edited ", "bold $warning"), preview)
        else:
            shown_value = Content(preview)
        detail.border_title = letter.position
        detail.update(
            Content("\n").join(
                [
                    _field("reason", letter.reason or "-"),
                    _field("key", _printable(letter.key)),
                    _field("value", shown_value),
                ]
            )
        )

    def _show_state(self) -> None:
        shown = self.topic or "all DLQs"
        force = "  FORCE" if self.force else ""
        self.query_one("#dlq-state", Static).update(
            f"{shown}: {len(self.letters)} records, {len(self.selected)} selected{force}"
            f"  — {self.message}"
        )

    def _current(self) -> DeadLetter | None:
        table = self.query_one(DeckTable)
        if not self.letters or table.cursor_row < 0:
            return None
        return self.letters[min(table.cursor_row, len(self.letters) - 1)]

    # ------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.message = "loading…"
        self._show_state()
        self._load()

    @work(group="dlq", exclusive=True, exit_on_error=False, name="dead letters")
    async def _load(self) -> None:
        try:
            letters = await self.runtime.dead_letters(self.topic)
        except Exception as exc:
            self.message = f"could not read: {exc}"
        else:
            self.letters = letters
            known = {d.position for d in letters}
            self.selected &= known
            self.message = "ready"
        self.loaded = True
        self._show()

    def action_toggle_row(self) -> None:
        after_queued_keys(self, self._toggle_row)

    def _toggle_row(self) -> None:
        letter = self._current()
        if letter is None:
            return
        self.selected ^= {letter.position}
        self._show()

    def action_select_all(self) -> None:
        every = {d.position for d in self.letters}
        self.selected = set() if self.selected == every else every
        self._show()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action == "force":
            return parameters == (not self.force,)
        return allowed

    def action_force(self, on: bool) -> None:
        """``F``: redrive again records redriven before (or stop doing so)."""
        self.force = on
        self._show_state()
        self.refresh_bindings()

    def action_edit(self) -> None:
        letter = self._current()
        if letter is None:
            return
        chosen = [d for d in self.letters if d.position in self.selected]
        if len(chosen) == 1:
            letter = chosen[0]
        value = self.edits.get(letter.position, letter.value or b"")
        position = letter.position

        def edited(new: bytes | None) -> None:
            if new is not None:
                self.edits[position] = new
                self.selected.add(position)
                self.message = f"edited {position}"
                self._show()

        self.app.push_screen(EditValueScreen(position, value.decode(errors="replace")), edited)

    def action_redrive(self) -> None:
        chosen = [d for d in self.letters if d.position in self.selected]
        if not chosen:
            self.message = "select records first (space, or a for all)"
            self._show_state()
            return
        force = " with force" if self.force else ""
        question = f"Redrive {len(chosen)} record(s){force} to their original topic?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._redrive(chosen, self.force)

        self.app.push_screen(ConfirmScreen(question), answered)

    @work(group="dlq", exclusive=True, exit_on_error=False, name="redrive")
    async def _redrive(self, chosen: list[DeadLetter], force: bool) -> None:
        self.message = "redriving…"
        self._show_state()
        sent = skipped = 0
        sources: set[str] = set()
        plain: dict[str, list[tuple[int, int]]] = defaultdict(list)
        try:
            for d in chosen:
                if d.position in self.edits:
                    report = await self.runtime.redrive(
                        d.dlq, [(d.partition, d.offset)], value=self.edits[d.position], force=force
                    )
                    sent, skipped = sent + len(report.sent), skipped + len(report.skipped)
                    sources |= {r.source for r in report.sent}
                else:
                    plain[d.dlq].append((d.partition, d.offset))
            for dlq, positions in plain.items():
                report = await self.runtime.redrive(dlq, positions, force=force)
                sent, skipped = sent + len(report.sent), skipped + len(report.skipped)
                sources |= {r.source for r in report.sent}
        except Exception as exc:
            self.message = f"redrive failed after {sent} sent: {exc}"
        else:
            note = f", {skipped} skipped as redriven before (F: force)" if skipped else ""
            self.message = f"redriven {sent}{note}"
            self.selected.clear()
            self.edits = {
                k: v for k, v in self.edits.items() if k not in {d.position for d in chosen}
            }
        try:
            letters = await self.runtime.dead_letters(self.topic)
        except Exception as exc:
            letters = self.letters
            self.message += f"; reload failed: {exc}"
        # The redrive memory is read back a moment after its transaction commits; what this
        # redrive sent is known now, so the table does not say "no" for it meanwhile.
        self.letters = [replace(d, redriven=True) if d.position in sources else d for d in letters]
        self._show()
