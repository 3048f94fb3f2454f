"""Topics: a live tail of one topic (the four pipeline topics and their dead-letter topics).

The tail is group-less (``runtime.open_tail``), so watching never joins or disturbs the
services' groups. A worker pulls batches and posts *one message per batch*; the view keeps a
bounded ring and renders only visible lines, so thousands of events per second leave the
keyboard responsive. Filter by order id or event type, pause and resume (the tail's position
is kept), restart from the earliest or the latest offset, or seek (``s``) to an offset or a
time. While another screen is shown, batches are only kept (bounded), not drawn: the view
catches up when the screen is shown again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.highlight import highlight
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from orderdeck.events import dlq_topic
from orderdeck.kafka.seek_target import SeekOffset, SeekTime
from orderdeck.rates import RateMeter
from orderdeck.screens.base import DeckScreen
from orderdeck.screens.dead_letters import DeadLettersScreen
from orderdeck.screens.seek import SeekScreen
from orderdeck.widgets.deck_table import DeckList
from orderdeck.widgets.formatting import WIDE_FROM, clock_ms
from orderdeck.widgets.live_static import LiveStatic
from orderdeck.widgets.record_view import FENCED_MARK, RecordView, header_text, matches

if TYPE_CHECKING:
    from orderdeck.kafka.seek_target import SeekTarget
    from orderdeck.kafka.tail import TailRecord

BATCH_MAX_RECORDS = 1000
BATCH_TIMEOUT_MS = 200
#: Batches posted but not yet shown; beyond this the worker waits (backpressure).
MAX_PENDING_BATCHES = 4
HISTORY = 10_000
#: The pipeline's topics have 3 partitions; more are picked up from the records seen.
DEFAULT_PARTITIONS = 3
#: The tail's records/s is measured over the last second, so a burst shows at once.
TAIL_RATE_WINDOW_S = 1.0


class TailBatch(Message):
    """Records from the tail worker; ``generation`` drops batches of a replaced tail."""

    def __init__(self, generation: int, records: list[TailRecord]) -> None:
        super().__init__()
        self.generation = generation
        self.records = records


class TailFailed(Message):
    """The tail could not start or broke; shown in the tail's status line."""

    def __init__(self, generation: int, reason: str) -> None:
        super().__init__()
        self.generation = generation
        self.reason = reason


class TopicsScreen(DeckScreen):
    """Topic list on the left; the live records, a filter and the selected record's JSON."""

    TITLE_TEXT = "Topics"
    AUTO_FOCUS = "#records"
    HOME_FOCUS = "#records"

    BINDINGS: ClassVar[list[BindingType]] = [
        # One key, two labels: the footer says what ``p`` will do.
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("e", "restart(True)", "Earliest"),
        Binding("l", "restart(False)", "Latest"),
        Binding("s", "seek", "Seek"),
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("P", "cycle_partition", "Partition"),
        Binding("f", "follow", "Follow"),
        Binding("t", "focus_topics", "Topics"),
        Binding("c", "copy_record", "Copy"),
        Binding("d", "dead_letters", "Dead letters"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.topic: str | None = None
        self.from_beginning = False
        #: Where the current tail was sought to (None: the earliest or latest offsets).
        self.start_at: SeekTarget | None = None
        self.paused = False
        #: Only this partition's records are shown (None: all of them).
        self.partition: int | None = None
        self.filter_text = ""
        self._partitions: set[int] = set()
        #: The tailed topic's partitions, as the tail found them when it started.
        self.tail_partitions: tuple[int, ...] = ()
        #: Records that arrived while another screen was shown, not yet in the view.
        self._backlog: deque[TailRecord] = deque(maxlen=HISTORY)
        self.error: str | None = None
        #: True once the current tail is assigned and positioned (tests wait for it).
        self.tail_ready = False
        self._generation = 0
        self._pending = 0
        self._tail_go = asyncio.Event()
        self._tail_go.set()
        self._rate = RateMeter(TAIL_RATE_WINDOW_S)
        #: The record to show on the next tick (a 1-tuple, since None is a valid record).
        self._record_due: tuple[TailRecord | None] | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="topics-main"):
            yield DeckList(id="topic-list")
            with Vertical(id="tail-pane"):
                yield Input(placeholder="/ filter: order id or event type", id="filter")
                yield LiveStatic(id="tail-state")
                yield LiveStatic(id="tail-header")
                yield RecordView(HISTORY, id="records")
                yield Static(id="record-json")

    def on_mount(self) -> None:
        self.query_one("#topic-list").border_title = "Topics"
        self.query_one("#record-json").border_title = "Record"
        self.query_one(RecordView).is_fenced = self._is_fenced

    def _is_fenced(self, record: TailRecord) -> bool:
        """A record of an OrderPlaced the API answered 503 for: a dead attempt, no order."""
        return record.topic == self.runtime.names.orders and self.runtime.fenced.is_fenced(
            record.order_id, record.value
        )

    def on_screen_resume(self) -> None:
        # What arrived while another screen was shown goes in now, in one batch.
        view = self.query_one(RecordView)
        if self._backlog:
            backlog = list(self._backlog)
            self._backlog.clear()
            view.add_batch(backlog)
        if view.follow:
            view.scroll_end(animate=False, x_axis=False)

    def refresh_live(self, *, full: bool) -> None:
        topics = self.query_one("#topic-list", OptionList)
        if topics.option_count == 0:
            if not self.is_current:
                return  # built ahead while hidden (screens.prebuild): tail from its first showing
            for topic in self.runtime.names.pipeline():
                topics.add_option(Option(topic.removeprefix(self.runtime.names.prefix), id=topic))
                topics.add_option(Option("  └ .dlq", id=dlq_topic(topic)))
            topics.highlighted = 0
            self.start_tail(self.runtime.names.orders)
        if self._record_due is not None:
            (record,), self._record_due = self._record_due, None
            self._show_record(record)
        self._show_state()

    # ------------------------------------------------------------------ tail

    def start_tail(
        self,
        topic: str,
        from_beginning: bool | None = None,
        start_at: SeekTarget | None = None,
    ) -> None:
        """(Re)start tailing ``topic``, from ``start_at`` if given; the old tail stops first."""
        self.topic = topic
        if from_beginning is not None:
            self.from_beginning = from_beginning
        self.start_at = start_at
        self.error = None
        self.tail_ready = False
        self._generation += 1
        self._pending = 0
        self._partitions.clear()
        self.tail_partitions = ()
        self._backlog.clear()
        self._rate.clear()
        self.query_one(RecordView).clear()
        # A seek moves every partition it names; the others follow from their end.
        from_start = self.from_beginning and start_at is None
        self._run_tail(self._generation, topic, from_start, start_at)
        self._show_state()

    @work(group="tail", exclusive=True, exit_on_error=False, name="topic tail")
    async def _run_tail(
        self, generation: int, topic: str, from_beginning: bool, start_at: SeekTarget | None
    ) -> None:
        worker = get_current_worker()
        tail = self.runtime.open_tail([topic], from_beginning)
        try:
            await tail.start()
            if start_at is not None:
                await tail.seek(start_at)
            if generation == self._generation:
                self.tail_partitions = tuple(p for _, p in tail.partitions)
                self.tail_ready = True
            while not worker.is_cancelled:
                await self._tail_go.wait()
                if self._pending >= MAX_PENDING_BATCHES:
                    await asyncio.sleep(0.02)
                    continue
                batch = await tail.next_batch(BATCH_MAX_RECORDS, BATCH_TIMEOUT_MS)
                if batch:
                    self._pending += 1
                    self.post_message(TailBatch(generation, batch))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.post_message(TailFailed(generation, str(exc) or type(exc).__name__))
        finally:
            await tail.stop()

    def on_tail_batch(self, message: TailBatch) -> None:
        if message.generation != self._generation:
            return
        self._pending = max(0, self._pending - 1)
        self._partitions.update(r.partition for r in message.records)
        if not self.is_current:
            # Hidden (another screen, or a modal over this one): keep, do not draw.
            self._backlog.extend(message.records)
            return
        self.query_one(RecordView).add_batch(message.records)

    def on_tail_failed(self, message: TailFailed) -> None:
        if message.generation == self._generation:
            self.error = message.reason
            self._show_state()

    # ------------------------------------------------------------------ view

    @on(OptionList.OptionSelected, "#topic-list")
    def _topic_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and event.option.id != self.topic:
            # A time means the same moment in every topic (following one order or incident
            # across them); an offset belongs to the topic it was typed for.
            keep = self.start_at if isinstance(self.start_at, SeekTime) else None
            self.start_tail(event.option.id, start_at=keep)
        self.query_one(RecordView).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._apply_filter()

    def _apply_filter(self) -> None:
        text = matches(self.filter_text)
        partition = self.partition
        if partition is None:
            check = text
        else:

            def check(record: TailRecord) -> bool:
                return record.partition == partition and (text is None or text(record))

        self.query_one(RecordView).set_filter(check)
        self._show_state()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(RecordView).focus()

    def on_record_view_selected(self, message: RecordView.Selected) -> None:
        if self.query_one(RecordView).follow:
            # While following, the newest record changes with every batch; highlighting its
            # JSON each time would cost more than the batch. The tick shows the latest one.
            self._record_due = (message.record,)
        else:
            self._record_due = None
            self._show_record(message.record)

    def on_resize(self) -> None:
        view = self.query_one(RecordView)
        self.query_one("#tail-header", LiveStatic).show(header_text(view.line_width or 96))

    def _show_record(self, record: TailRecord | None) -> None:
        panel = self.query_one("#record-json", Static)
        if record is None:
            panel.border_subtitle = ""
            panel.update(Content.styled("no record selected", "dim"))
            return
        when = clock_ms(record.timestamp_ms)
        panel.border_subtitle = f"{record.topic} p{record.partition} @ {record.offset} · {when}"
        headers = "  ".join(f"{k}={v.decode('utf-8', 'replace')}" for k, v in record.headers)
        body = highlight(record.pretty_json(), language="json")
        parts: list[Content | tuple[str, str]] = []
        if self._is_fenced(record):
            parts.append(
                (
                    f"{FENCED_MARK}: the API answered 503 for this attempt; no order was made\n",
                    "bold $warning",
                )
            )
        if headers:
            parts.append((headers + "\n", "dim"))
        panel.update(Content.assemble(*parts, body) if parts else body)

    def _show_state(self) -> None:
        view = self.query_one(RecordView)
        now = self.deck.clock()
        self._rate.add(now, view.received)
        rate = self._rate.rate() or 0.0
        topic = (self.topic or "-").removeprefix(self.runtime.names.prefix)
        if self.error:
            state = Content.assemble(
                (topic, "bold $accent"), (" · ", "dim"), (f"✘ {self.error}", "bold red")
            )
        else:
            mode = ("⏸ paused", "bold yellow") if self.paused else ("● live", "bold green")
            wide = self.size.width >= WIDE_FROM
            if self.start_at is not None:
                start = self.start_at.describe() if wide else self.start_at.short()
            else:
                start = "earliest" if self.from_beginning else "latest"
            if wide:
                follow = "following" if view.follow else "scrolled"
                where = (
                    "all partitions" if self.partition is None else f"partition {self.partition}"
                )
                state = Content.assemble(
                    (topic, "bold $accent"),
                    (" · ", "dim"),
                    mode,
                    (f" from {start} · {where} · ", "dim"),
                    (f"{view.shown:,}", "bold"),
                    (f"/{view.kept:,} kept · {rate:,.0f}/s · {follow}", "dim"),
                )
            else:
                where = "p*" if self.partition is None else f"p{self.partition}"
                state = Content.assemble(
                    (topic, "bold $accent"),
                    (" · ", "dim"),
                    mode,
                    (f" · {start} · {where} · ", "dim"),
                    (f"{view.shown:,}", "bold"),
                    # While reading back, "scrolled" matters more than the rate.
                    (
                        f"/{view.kept:,} · {rate:,.0f}/s" if view.follow else f"/{view.kept:,}",
                        "dim",
                    ),
                    ("" if view.follow else " · scrolled", "yellow"),
                )
        self.query_one("#tail-state", LiveStatic).show(state)

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action in ("pause", "resume"):
            return self.paused == (action == "resume")
        return allowed

    def action_pause(self) -> None:
        """Stop pulling records; the tail keeps its position."""
        if not self.paused:
            self.action_toggle_pause()

    def action_resume(self) -> None:
        """Carry on from where the tail stopped."""
        if self.paused:
            self.action_toggle_pause()

    def action_cycle_partition(self) -> None:
        """Show one partition after the other, then all of them again."""
        known = sorted(self._partitions | set(range(DEFAULT_PARTITIONS)))
        if self.partition is None:
            self.partition = known[0]
        else:
            later = [p for p in known if p > self.partition]
            self.partition = later[0] if later else None
        self._apply_filter()

    def action_copy_record(self) -> None:
        """Write the selected record's JSON to a file in the data dir, and the clipboard."""
        record = self.query_one(RecordView).selected
        if record is None:
            self.notify("no record selected", severity="warning")
            return
        text = record.pretty_json()
        directory = self.deck.data_dir / "records"
        path = directory / f"{record.topic}-p{record.partition}-{record.offset}.json"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            self.notify(f"could not write {path}: {exc}", severity="error")
            return
        # OSC 52: terminals that allow it put the text on the system clipboard.
        self.app.copy_to_clipboard(text)
        self.notify(f"record JSON written to {path} (and offered to the clipboard)")

    def action_toggle_pause(self) -> None:
        """Stop pulling records (the tail keeps its position) or carry on."""
        self.paused = not self.paused
        if self.paused:
            self._tail_go.clear()
        else:
            self._tail_go.set()
        self._show_state()
        self.refresh_bindings()

    def action_restart(self, from_beginning: bool) -> None:
        """Start the tail again from the earliest or the latest offset."""
        if self.topic is not None:
            self.start_tail(self.topic, from_beginning)

    def action_seek(self) -> None:
        """Ask where to start (an offset or a time) and restart the tail there."""
        if self.topic is None:
            return
        topic = self.topic.removeprefix(self.runtime.names.prefix)
        self.app.push_screen(SeekScreen(topic, self.tail_partitions), self._seek_chosen)

    def _seek_chosen(self, target: SeekTarget | None) -> None:
        if target is None or self.topic is None:
            return
        if isinstance(target, SeekOffset) and target.partition is not None:
            # P:OFFSET is a request to read that partition: show it alone.
            self.partition = target.partition
            self._apply_filter()
        self.start_tail(self.topic, start_at=target)

    def action_dead_letters(self) -> None:
        """The Dead letters screen for the DLQ tailed now, or for every DLQ otherwise."""
        dlqs = {dlq_topic(t) for t in self.runtime.names.pipeline()}
        self.app.push_screen(DeadLettersScreen(self.topic if self.topic in dlqs else None))

    def action_focus_filter(self) -> None:
        """Put the cursor in the filter box."""
        self.query_one("#filter", Input).focus()

    def action_focus_topics(self) -> None:
        """Move to the topic list."""
        self.query_one("#topic-list", OptionList).focus()

    def action_follow(self) -> None:
        """Jump to the newest record and keep following."""
        self.query_one(RecordView).action_follow()
        self._show_state()
