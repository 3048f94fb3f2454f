"""The header line every screen shares: where Kafka and the API are and how things run."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from orderdeck.widgets.formatting import state_style


@dataclass(frozen=True)
class HeaderInfo:
    """What the header shows; built by the app from the runtime's status."""

    bootstrap_servers: str
    api_url: str
    kafka: str
    api: str
    services: str
    orders_per_s: float | None = None
    total_lag: int | None = None
    #: ``KafkaConnection.describe()`` when the connection is not plaintext (no secret in it).
    kafka_security: str | None = None


def _state(state: str) -> tuple[str, str]:
    """A coloured dot, plus the state's name unless it is the normal "running"."""
    word, _, rest = state.partition(" ")
    text = f"● {rest}" if word == "running" and rest else "●" if word == "running" else f"● {state}"
    return (text, state_style(word))


class StatusBar(Static):
    """One line: screen title, Kafka (and its security), API URL, states, orders/s, lag."""

    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.screen_title = title
        self.info: HeaderInfo | None = None

    def on_mount(self) -> None:
        self._render_info()

    def show(self, info: HeaderInfo) -> None:
        """Redraw with ``info`` (skipped when nothing changed: the app ticks often)."""
        if info != self.info:
            self.info = info
            self._render_info()

    def _render_info(self) -> None:
        sep = (" │ ", "dim")
        parts: list[Content | str | tuple[str, str]] = [(self.screen_title, "bold $accent")]
        info = self.info
        if info is not None:
            parts += [
                sep,
                ("kafka ", "dim"),
                (info.bootstrap_servers + " ", ""),
                (info.kafka_security + " ", "") if info.kafka_security else "",
                _state(info.kafka),
                sep,
                ("api ", "dim"),
                (info.api_url + " ", ""),
                _state(info.api),
                sep,
                ("services ", "dim"),
                _state(info.services),
                sep,
                (f"{info.orders_per_s:.1f}" if info.orders_per_s is not None else "-", "bold"),
                (" orders/s", "dim"),
                sep,
                ("lag ", "dim"),
                (
                    f"{info.total_lag:,}" if info.total_lag is not None else "-",
                    "bold yellow" if info.total_lag else "bold",
                ),
            ]
        self.update(Content.assemble(*parts), layout=False)
