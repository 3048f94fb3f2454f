"""How the screens and the app talk, without the screens naming the app class.

Screens *read* what the app keeps for them through :class:`DeckHost` (a Protocol the app
satisfies), and *ask* it to act by posting the Messages below, which bubble up to the app.
The start-up screen tells the app it is gone through its ``push_screen`` callback. So
``orderdeck.app`` imports the screens and no screen imports ``orderdeck.app``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from textual.message import Message

if TYPE_CHECKING:
    from pathlib import Path

    from orderdeck.widgets.live import LiveModel
    from orderdeck.widgets.runtime_link import RuntimeHooks, RuntimeLike
    from orderdeck.widgets.status_bar import HeaderInfo


class DeckHost(Protocol):
    """What a screen may read from the app that shows it."""

    @property
    def runtime(self) -> RuntimeLike: ...

    @property
    def live(self) -> LiveModel: ...

    @property
    def hooks(self) -> RuntimeHooks | None: ...

    @property
    def show_logs(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def data_dir(self) -> Path: ...

    def header_info(self) -> HeaderInfo | None: ...


class ToggleServiceRequested(Message):
    """Pause the service if it runs, resume it if it is paused."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service


class ScaleServiceRequested(Message):
    """Run ``instances`` consumers of the service in its group."""

    def __init__(self, service: str, instances: int) -> None:
        super().__init__()
        self.service = service
        self.instances = instances


class ShowOrderRequested(Message):
    """Open the Orders screen on one order's journey."""

    def __init__(self, order_id: str) -> None:
        super().__init__()
        self.order_id = order_id
