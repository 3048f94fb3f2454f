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


def _dot(state: str) -> tuple[str, str]:
    """Only the coloured dot: the narrowest header keeps the colour, not the word."""
    return ("●", state_style(state.partition(" ")[0]))


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

    def on_resize(self) -> None:
        self._render_info()

    def _render_info(self) -> None:
        """The fullest header that fits: the API URL goes first, then Kafka's, then labels.

        The states, orders/s and lag are what the header is read for, so they stay at any
        width; the bootstrap servers and the API URL are on the Pipeline screen as well.
        """
        width = self.content_size.width or 10_000
        for level in range(4):
            content = self._assemble(level)
            if content.cell_length <= width:
                break
        self.update(content, layout=False)

    def _assemble(self, level: int) -> Content:
        sep = (" │ ", "dim")
        parts: list[Content | str | tuple[str, str]] = [(self.screen_title, "bold $accent")]
        info = self.info
        if info is None:
            return Content.assemble(*parts)
        kafka = info.bootstrap_servers + " " if level == 0 else ""
        api = info.api_url + " " if level == 0 else ""
        if level == 1:
            # Which cluster (and how it is secured) matters more than where the API listens.
            kafka = info.bootstrap_servers + " "
        security = info.kafka_security
        if security and level >= 2:
            security = security.split(" ")[0]  # the protocol: SSL, SASL_SSL
        parts += [
            sep,
            ("kafka ", "dim"),
            (kafka, ""),
            # TLS and SASL are named at any width: the protocol at least.
            (security + " ", "") if security else "",
            _state(info.kafka) if level < 3 else _dot(info.kafka),
            sep,
            ("api ", "dim"),
            (api, ""),
            _state(info.api) if level < 3 else _dot(info.api),
            sep,
            ("services " if level < 2 else "svc ", "dim"),
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
        return Content.assemble(*parts)
