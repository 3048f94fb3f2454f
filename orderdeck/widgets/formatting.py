"""Small text formatters shared by the screens, so every view prints numbers the same way.

Times are shown in UTC: Kafka record timestamps are UTC and a control center watched from
several machines should not disagree about when something happened.
"""

from __future__ import annotations

from datetime import UTC, datetime

STATE_STYLES: dict[str, str] = {
    "running": "green",
    "up": "green",
    "ready": "green",
    "done": "green",
    "stable": "green",
    "confirmed": "green",
    "starting": "yellow",
    "rebalancing": "yellow",
    "preparingrebalance": "yellow",
    "completingrebalance": "yellow",
    "restarting": "yellow",
    "paused": "yellow",
    "placed": "cyan",
    "pending": "cyan",
    "paid": "cyan",
    "waiting": "dim",
    "stopped": "dim",
    "empty": "dim",
    "unknown": "dim",
    "dead": "red",
    "failed": "red",
    "down": "red",
    "error": "red",
    "rejected": "red",
    "payment_declined": "red",
    "cancelled": "magenta",
}


def state_style(state: str) -> str:
    """The Rich style for a state word (service, group, broker or order status)."""
    return STATE_STYLES.get(state.lower().replace(" ", "").replace("-", ""), "default")


def styled_state(state: str) -> str:
    """``state`` wrapped in Content markup with its colour and a status dot."""
    return f"[{state_style(state)}]● {state}[/]"


def clock_ms(timestamp_ms: int) -> str:
    """``HH:MM:SS.mmm`` (UTC) for a Kafka record timestamp in milliseconds."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def clock(moment: datetime | str | None) -> str:
    """``HH:MM:SS.mmm`` (UTC) for a datetime or an ISO-8601 string; ``-`` when absent."""
    if moment is None:
        return "-"
    if isinstance(moment, str):
        text = moment
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def rate(value: float | None) -> str:
    """Events per second with one decimal, or ``-`` when not known yet."""
    return "-" if value is None else f"{value:,.1f}/s"


def count(value: int | None) -> str:
    """An integer with thousands separators, or ``-`` when not known."""
    return "-" if value is None else f"{value:,}"


def money(cents: int | None) -> str:
    """Integer cents as dollars."""
    return "-" if cents is None else f"${cents / 100:,.2f}"


def short_id(value: str | None, width: int = 9) -> str:
    """An id cut to ``width`` characters keeping its *end*: ``…3f9a1c2e``.

    Order and event ids are UUIDv7: ids made in the same second share their first eight
    or more characters (a millisecond timestamp), so only the tail tells them apart.
    """
    if not value:
        return "-"
    if len(value) <= width:
        return value
    return "…" + value[-max(1, width - 1) :]


#: Terminals narrower than this get the compact layouts (the -narrow screen class).
WIDE_FROM = 120


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis when it was longer."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
