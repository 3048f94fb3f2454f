"""The orderdeck control center: a Textual app that runs the pipeline and shows Kafka at work.

The app owns no Kafka or SQL code. It is handed a runtime (``RuntimeLike``: the real
``orderdeck.runtime.Runtime`` or a deterministic fake in snapshot tests) and:

* starts it in a worker right after the first frame, showing the start-up steps as the
  runtime reports them, so the screen is never blank while a JVM boots;
* polls consumer groups once a second in one worker and keeps a rolling picture
  (``LiveModel``) that every screen reads, ticking only the screen on display;
* on quit (``q``/``ctrl+c``) cancels its own workers, stops the runtime (services commit,
  API drains, the local Kafka it started stops) and only then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import AwaitMount
from textual.widgets import Input
from textual.worker import Worker, get_current_worker

from orderdeck.errors import OrderdeckError
from orderdeck.process_tuning import event_loop_factory, settle_heap
from orderdeck.screens.base import AfterQueuedKeys, DeckScreen
from orderdeck.screens.help import HelpScreen, help_sections
from orderdeck.screens.pipeline import PipelineScreen
from orderdeck.screens.prebuild import ScreenPrebuild
from orderdeck.screens.protocol import (
    ScaleServiceRequested,
    ShowOrderRequested,
    ToggleServiceRequested,
)
from orderdeck.screens.startup import StartupScreen
from orderdeck.widgets.formatting import WIDE_FROM
from orderdeck.widgets.live import LiveModel
from orderdeck.widgets.runtime_link import RuntimeHooks, RuntimeLike
from orderdeck.widgets.status_bar import HeaderInfo

if TYPE_CHECKING:
    from orderdeck.config import Settings
    from orderdeck.kafka.admin import GroupSnapshot
    from orderdeck.screens.orders import OrdersScreen
    from orderdeck.screens.protocol import DeckHost

log = logging.getLogger("orderdeck.app")

#: (mode, key, footer label) in the order the keys run along the footer.
DIGIT_KEYS = Binding.Group("Screens", compact=True)
F_KEYS = Binding.Group("Screens")
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("pipeline", "1", "Pipeline"),
    ("submit", "2", "Submit"),
    ("topics", "3", "Topics"),
    ("groups", "4", "Groups"),
    ("services", "5", "Services"),
    ("orders", "6", "Orders"),
    ("cluster", "7", "Cluster"),
    ("chaos", "8", "Chaos"),
)
POLL_INTERVAL_S = 1.0
TICK_INTERVAL_S = 0.25
SNAPSHOT_TIMEOUT_S = 5.0


#: The screens' modules that ``MODES`` imports on first use (all but the first screen's).
_LAZY_SCREENS = ("submit", "topics", "groups", "services", "orders", "cluster")


def _lazy_screen(module: str, name: str) -> Callable[[], Screen[None]]:
    def make() -> Screen[None]:
        screen_class = getattr(importlib.import_module(f"orderdeck.screens.{module}"), name)
        screen: Screen[None] = screen_class()
        return screen

    return make


class OrderDeckApp(App[int]):
    """The control center. Build it with a runtime; ``run_app`` wires the real one."""

    TITLE = "orderdeck"
    #: Every screen's stylesheet, loaded once at start: a screen's own CSS_PATH would be
    #: parsed on its first display and restyle every widget, a visible pause on a key press.
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        "app.tcss",
        *(f"screens/{name}.tcss" for name in (*(m for m, _, _ in SCREENS), "startup")),
    ]
    ENABLE_COMMAND_PALETTE = True

    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        "pipeline": PipelineScreen,
        # The other screens are imported on first use: the first frame must not wait for them.
        "submit": _lazy_screen("submit", "SubmitScreen"),
        "topics": _lazy_screen("topics", "TopicsScreen"),
        "groups": _lazy_screen("groups", "GroupsScreen"),
        "services": _lazy_screen("services", "ServicesScreen"),
        "orders": _lazy_screen("orders", "OrdersScreen"),
        "cluster": _lazy_screen("cluster", "ClusterScreen"),
        "chaos": _lazy_screen("chaos", "ChaosScreen"),
    }

    #: Narrow terminals get the ``-narrow`` class on every screen, and their CSS the compact
    #: layouts; 120 columns and more are ``-wide``.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_FROM, "-wide")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?"),
        *(
            Binding(
                key,
                f"show('{mode}')",
                label,
                key_display=key,
                tooltip=f"{label} screen",
                group=DIGIT_KEYS,
            )
            for mode, key, label in SCREENS
        ),
        # F-keys reach the screens even while a text field has the focus, where the digits
        # type digits: the footer shows them there (and only there) in the digits' place.
        *(
            Binding(
                f"f{key}",
                f"show_from_field('{mode}')",
                label,
                key_display=f"F{key}",
                group=F_KEYS,
            )
            for mode, key, label in SCREENS
        ),
        *(Binding(f"f{key}", f"show('{mode}')", label, show=False) for mode, key, label in SCREENS),
        Binding("q", "quit_key", "Quit"),
        Binding("ctrl+q", "quit_from_field", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+l", "toggle_logs", "Logs", show=False),
    ]

    def __init__(
        self,
        runtime: RuntimeLike | None = None,
        *,
        runtime_factory: Callable[[], RuntimeLike] | None = None,
        hooks: RuntimeHooks | None = None,
        poll_interval: float = POLL_INTERVAL_S,
        tick_interval: float = TICK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        handle_sigterm: bool = False,
        data_dir: Path | None = None,
        settle_heap: Callable[[], None] | None = None,
    ) -> None:
        """``settle_heap``: called once, at a quiet moment after the runtime started and
        every screen was built (``launch`` gives ``process_tuning.settle_heap``)."""
        super().__init__()
        # A factory defers importing and building the runtime (uvicorn, aiokafka, the store)
        # until after the first frame: ``launch`` shows its screen before any of that loads.
        if (runtime is None) == (runtime_factory is None):
            raise ValueError("give either a runtime or a runtime_factory")
        self._runtime = runtime
        self._runtime_factory = runtime_factory
        self.hooks = hooks
        #: Where copied records and screenshots go (the launch's --data-dir).
        self.data_dir = data_dir if data_dir is not None else Path("data")
        self.live = LiveModel()
        self.clock = clock
        self.poll_interval = poll_interval
        self.tick_interval = tick_interval
        self.show_logs = False
        self.ready = False
        self.stopping = False
        self.start_error: str | None = None
        self.polls = 0
        self._handle_sigterm = handle_sigterm
        self._startup: StartupScreen | None = None
        self._force_stop = False
        #: The modes whose screens were built (``switch_mode`` draws those without a pause).
        self._modes_shown: set[str] = set()
        self._switch_instantly = False
        self._last_key_at = float("-inf")
        self._prebuild = ScreenPrebuild(self)
        self._settle_heap = settle_heap
        self._screens_built = False

    @property
    def runtime(self) -> RuntimeLike:
        """The runtime (raises until a deferred one has been built)."""
        if self._runtime is None:
            raise RuntimeError("the runtime is not built yet")
        return self._runtime

    # ------------------------------------------------------------------ lifecycle

    async def on_mount(self) -> None:
        await self.switch_mode("pipeline")
        self._startup = StartupScreen()
        await self.push_screen(self._startup, callback=self._startup_closed)
        self.set_interval(self.tick_interval, self._tick, name="tick")
        if self._handle_sigterm:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)
        self._start_runtime()

    def _on_sigterm(self) -> None:
        self.call_later(self.action_quit)

    @work(group="runtime", exit_on_error=False, name="start runtime")
    async def _start_runtime(self) -> None:
        try:
            if self._runtime is None and self._runtime_factory is not None:
                # In a thread: the imports take a while and the start-up view keeps moving.
                self._runtime = await asyncio.to_thread(self._runtime_factory)
            # While the runtime starts (the loop mostly waits then), the other screens are
            # built: the first keys after start-up come quickly, with no quiet moment.
            self._import_screens()
            await self.runtime.start()
        except asyncio.CancelledError:
            raise
        except OrderdeckError as exc:
            self._start_failed(str(exc))
            return
        except Exception as exc:  # shown, not raised: the user must be able to read it
            log.exception("start-up failed")
            self._start_failed(f"{type(exc).__name__}: {exc}")
            return
        self._drain_steps()
        if self.stopping:
            return  # quit during start-up: the shutdown worker takes it from here
        self.ready = True
        if self._startup is not None:
            self._startup.finished()
        self._poll_groups()
        self._tick(full=True)
        self._settle_heap_once()

    @work(group="import screens", exit_on_error=False, name="import screens")
    async def _import_screens(self) -> None:
        # The screens not yet shown are imported in a thread, not by their first key: that
        # import was most of the first switch to a screen (Topics: 130 ms on its own).
        for module in _LAZY_SCREENS:
            await asyncio.to_thread(importlib.import_module, f"orderdeck.screens.{module}")
        # Then composed, one per quiet moment: a first showing was the slowest key.
        await self._prebuild.build_when_quiet(
            (mode for mode, _, _ in SCREENS),
            lambda: self._last_key_at,
            time.monotonic,
            self._modes_shown.add,
        )
        self._screens_built = True
        if self.ready:
            await self._prebuild.wait_quiet(lambda: self._last_key_at, time.monotonic)
        self._settle_heap_once()

    def _settle_heap_once(self) -> None:
        """Hand the long-lived heap (screens, runtime, Kafka clients) to ``settle_heap`` once
        both exist. Under load the collector's full passes over it took 60-100 ms every few
        seconds, on the loop: they were the slowest keys (BENCHMARKS.md, issue 18)."""
        if self._settle_heap is None or not (self.ready and self._screens_built):
            return
        settle, self._settle_heap = self._settle_heap, None
        settle()

    async def _on_exit_app(self) -> None:
        await self._prebuild.settle()  # see ScreenPrebuild.settle
        await super()._on_exit_app()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._last_key_at = time.monotonic()  # the screens are built between keys
        await super().on_event(event)

    def _start_failed(self, message: str) -> None:
        self.start_error = message
        self._drain_steps()
        if self._startup is not None:
            self._startup.failed(message)

    def _startup_closed(self, _: None) -> None:
        """The start-up screen was dismissed (its push_screen callback)."""
        self._startup = None
        self._tick(full=True)

    @work(group="poll", exit_on_error=False, name="poll groups")
    async def _poll_groups(self) -> None:
        worker = get_current_worker()
        failures = 0
        while not worker.is_cancelled:
            started = self.clock()
            try:
                snapshots: list[GroupSnapshot] = await asyncio.wait_for(
                    self.runtime.group_snapshots(), SNAPSHOT_TIMEOUT_S
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.live.forget()  # the screens show lag as unknown, not the last figure
                # Once, then every 30th: a broker outage must not flood the log panel.
                if failures == 1 or failures % 30 == 0:
                    log.warning("consumer group snapshot failed: %s", exc or type(exc).__name__)
            else:
                failures = 0
                self.live.update(snapshots)
                self.live.lag_times = dict(self.runtime.lag_times())
                self.polls += 1
                self._tick(full=True)
            elapsed = self.clock() - started
            await asyncio.sleep(max(0.05, self.poll_interval - elapsed))

    def _drain_steps(self) -> None:
        if self.hooks is None or self._startup is None:
            return
        for step in self.hooks.take_steps():
            self._startup.show_step(step)

    def _tick(self, full: bool = False) -> None:
        """Bring the start-up view and the screen on display up to date."""
        self._drain_steps()
        if self.hooks is not None and self.hooks.take_changed():
            full = True
        if not self.is_running or not self.screen_stack:
            return  # a last timer tick while the app shuts down
        screen = self.screen
        if isinstance(screen, StartupScreen):
            screen.tick()
        elif isinstance(screen, DeckScreen):
            screen.tick(full=full)

    def header_info(self) -> HeaderInfo | None:
        """What the header shows, from the runtime's cached status."""
        try:
            status = self.runtime.status()
        except Exception:  # the header must never take the app down
            return None
        services = status.services
        if self.stopping:
            overall = "stopping"
        elif not services:
            overall = "starting" if not self.start_error else "stopped"
        else:
            states = {s.state for s in services}
            running = sum(1 for s in services if s.state == "running")
            if states == {"running"}:
                overall = f"running {running}/{len(services)}"
            else:
                worse_first = ("failed", "restarting", "waiting", "paused", "starting")
                worst = next((s for s in worse_first if s in states), "degraded")
                overall = f"{worst} {running}/{len(services)}"
        # Before start-up is over the runtime reports parts as "stopped"; they are starting.
        starting = not self.ready and not self.stopping and not self.start_error
        return HeaderInfo(
            bootstrap_servers=status.bootstrap_servers,
            kafka_security=status.kafka_security,
            api_url=status.api_url or "API off",
            kafka="starting" if starting and status.kafka == "stopped" else status.kafka,
            api="starting" if starting and status.api == "stopped" else status.api,
            services=overall,
            orders_per_s=status.orders_per_s,
            total_lag=status.total_lag,
        )

    def export_screenshot(self, *, title: str | None = None, simplify: bool = False) -> str:
        """Textual's SVG screenshot, marked ``xml:space="preserve"``.

        Every run of text is its own ``<text>`` element, and one that starts with spaces
        ("   members") has them as no-break spaces. Without ``preserve`` some renderers
        (librsvg, so ``rsvg-convert`` and many image viewers) drop those leading spaces and
        draw the words in the wrong cells, which runs labels into values ("Stablemembers").
        The docs screenshots and the snapshot baselines both come through here.
        """
        svg = super().export_screenshot(title=title, simplify=simplify)
        return svg.replace("<svg ", '<svg xml:space="preserve" ', 1)

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        """Save an SVG of the screen under ``<data dir>/screenshots`` and say where.

        Textual's default directory is ``~/Downloads``, which a server or a container often
        lacks; the data dir exists (the launch is using it) and belongs to this run.
        """
        directory = Path(path) if path else self.data_dir / "screenshots"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(directory))
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc}", title="Screenshot", severity="error")
            return None
        self.notify(f"saved to {saved}", title="Screenshot")
        return None

    # ------------------------------------------------------------------ actions

    def action_show(self, mode: str) -> None:
        """Switch to one of the screens (modes keep their state)."""
        if self.current_mode != mode:
            self.switch_mode(mode)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Textual's switch, without its 50 ms pause for a screen already built (see
        :meth:`delay_update`)."""
        self._switch_instantly = mode in self._modes_shown
        self._modes_shown.add(mode)
        try:
            return super().switch_mode(mode)
        finally:
            self._switch_instantly = False

    def delay_update(self, delay: float = 0.05) -> None:
        # switch_mode holds every frame back 50 ms so that a screen being composed does not
        # flicker; a mode shown before is complete at once, and those 50 ms were most of a
        # screen key's latency. Its first showing keeps the pause.
        if not self._switch_instantly:
            super().delay_update(delay)

    def action_toggle_logs(self) -> None:
        """Show or hide the log panel at the bottom of every screen."""
        self.show_logs = not self.show_logs
        self._tick()

    def in_text_field(self) -> bool:
        """True while a text field has the focus (printable keys type, they do not act)."""
        return isinstance(self.focused, Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Until the runtime is up, the screens have nothing to show and nothing to act on.
        if action in ("show", "show_from_field") and not self.ready:
            return False
        if action == "help" and isinstance(self.screen, HelpScreen | StartupScreen):
            return False  # nothing to list while starting; already open
        typing = self.in_text_field()
        if action in ("show_from_field", "quit_from_field"):
            return typing
        if action in ("show", "quit_key", "help"):
            # Hidden (and not needed) while typing: the field takes these keys as text.
            return not typing
        return True

    def action_show_from_field(self, mode: str) -> None:
        """An F-key pressed in a text field: switch screens all the same."""
        self.action_show(mode)

    async def action_quit_key(self) -> None:
        """``q``: the same as ``ctrl+q``."""
        await self.action_quit()

    async def action_quit_from_field(self) -> None:
        """``ctrl+q`` shown in the footer while a text field has the focus."""
        await self.action_quit()

    def action_help(self) -> None:
        """``?``: the keys of the screen on display."""
        screen = self.screen
        if isinstance(screen, HelpScreen | StartupScreen):
            return
        title = getattr(screen, "TITLE_TEXT", "") or type(screen).__name__
        self.push_screen(HelpScreen(title, help_sections(screen)))

    def show_order(self, order_id: str) -> None:
        """Open the Orders screen on one order's journey (from the submit results)."""
        self.switch_mode("orders")
        screen = self.screen
        if hasattr(screen, "show_order"):
            cast("OrdersScreen", screen).show_order(order_id)

    @on(AfterQueuedKeys)
    def _after_queued_keys(self, message: AfterQueuedKeys) -> None:
        # Here, the last stop of a key's way: the keys ahead of it have done their work.
        message.callback()

    @on(ShowOrderRequested)
    def _show_order_requested(self, message: ShowOrderRequested) -> None:
        self.show_order(message.order_id)

    @on(ToggleServiceRequested)
    def _toggle_service_requested(self, message: ToggleServiceRequested) -> None:
        self.toggle_service(message.service)

    @on(ScaleServiceRequested)
    def _scale_service_requested(self, message: ScaleServiceRequested) -> None:
        self.scale_service(message.service, message.instances)

    async def action_quit(self) -> None:
        """Stop the runtime (services commit, API drains, local Kafka stops), then exit.

        Quitting during start-up lets the step in progress finish first: a broker being
        started in a thread cannot be cancelled, and stopping before it is up would leave it
        running. Quitting a second time stops waiting.
        """
        if self.stopping:
            self._force_stop = True
            self.workers.cancel_group(self, "runtime")
            return
        self.stopping = True
        if self._startup is None:
            self._startup = StartupScreen(stopping=True)
            await self.push_screen(self._startup)
        else:
            self._startup.stopping()
        self._stop_everything()

    @work(group="shutdown", exit_on_error=False, name="shutdown")
    async def _stop_everything(self) -> None:
        me = get_current_worker()
        starting = [w for w in self.workers if w.group == "runtime" and not w.is_finished]
        others = [
            w for w in self.workers if w is not me and w not in starting and not w.is_finished
        ]
        for worker in others:
            worker.cancel()
        await _wait_all(others)
        await _wait_all(starting)  # see action_quit; a second quit cancels these
        try:
            if self._runtime is not None:
                await self._runtime.stop()
        except Exception as exc:
            log.error("stopping the runtime failed: %s", exc)
        code = 1 if self.start_error and not self._force_stop else 0
        self.exit(code, return_code=code)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, label in SCREENS:
            yield SystemCommand(
                f"Screen: {label}", f"Show the {label} screen (key {key})", self._shower(mode)
            )
        yield SystemCommand("Toggle log panel", "Show/hide logs (ctrl+l)", self.action_toggle_logs)
        if self.ready:
            for name in _service_names(self):
                yield SystemCommand(
                    f"Pause/resume service: {name}",
                    f"Stop or restart consuming in the {name} service",
                    self._toggler(name),
                )

    def _shower(self, mode: str) -> Callable[[], None]:
        return lambda: self.action_show(mode) if self.ready else None

    def _toggler(self, name: str) -> Callable[[], None]:
        def toggle() -> None:
            self.toggle_service(name)

        return toggle

    @work(group="control", exit_on_error=False)
    async def toggle_service(self, name: str) -> None:
        """Pause a running service or resume a paused one."""
        states = {s.name: s.state for s in self.runtime.supervisor.statuses()}
        try:
            if states.get(name) == "paused":
                await self.runtime.supervisor.resume(name)
                self.notify(f"{name} resumed")
            else:
                await self.runtime.supervisor.pause(name)
                self.notify(f"{name} paused: watch its lag grow on the Groups screen")
        except Exception as exc:
            self.notify(f"{name}: {exc}", severity="error")
        self._tick(full=True)

    @work(group="control", exit_on_error=False)
    async def scale_service(self, name: str, instances: int) -> None:
        """Run ``instances`` consumers (1..3) in the service's group."""
        try:
            await self.runtime.supervisor.scale(name, instances)
        except Exception as exc:
            self.notify(f"{name}: {exc}", severity="error")
        else:
            self.notify(f"{name}: {instances} instance{'s' if instances > 1 else ''}")
        self._tick(full=True)


if TYPE_CHECKING:

    def _screens_can_read(app: OrderDeckApp) -> DeckHost:
        return app  # mypy proves the app offers everything DeckHost promises the screens


def _service_names(app: OrderDeckApp) -> list[str]:
    try:
        return [s.name for s in app.runtime.supervisor.statuses()]
    except Exception:
        return []


async def _wait_all(workers: Iterable[Worker[object]]) -> None:
    for worker in workers:
        # Cancelled or failed: either way it is done.
        with contextlib.suppress(Exception):
            await worker.wait()


def run_app(settings: Settings, *, keep_kafka: bool = False) -> int:
    """Run the control center with the real runtime until the user quits."""
    hooks = RuntimeHooks()
    built: list[RuntimeLike] = []

    def build_runtime() -> RuntimeLike:
        from orderdeck.runtime import Runtime

        runtime = Runtime(
            settings,
            keep_kafka=keep_kafka,
            log_handler=hooks.log_buffer,
            on_progress=hooks.on_progress,
            on_change=hooks.on_change,
        )
        built.append(runtime)
        return runtime

    root = logging.getLogger()
    # Anything else that logs (warnings, libraries) goes to the panel, not over the screen.
    root.addHandler(hooks.log_buffer)
    saved_last_resort = logging.lastResort
    logging.lastResort = None
    app = OrderDeckApp(
        runtime_factory=build_runtime,
        hooks=hooks,
        handle_sigterm=True,
        data_dir=settings.data_dir,
        settle_heap=settle_heap,
    )

    async def main() -> None:
        try:
            await app.run_async()
        finally:
            # A no-op after a normal quit; after a crash it still stops the services, the
            # API and the broker this launch started, in the loop that owns them.
            for runtime in built:
                await runtime.stop()

    try:
        # uvloop, as serve uses: the API's and Kafka's sockets share this loop with the TUI.
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(main())
    finally:
        root.removeHandler(hooks.log_buffer)
        logging.lastResort = saved_last_resort
    if app.start_error:
        # The screen said why; the terminal keeps it once the screen is gone.
        print(f"orderdeck: error: {app.start_error}", file=sys.stderr)
    if app.return_code is None:  # the app never ran to its end (it crashed before exit())
        return 1
    return app.return_code
