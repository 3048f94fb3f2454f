"""A Static that ignores updates which would draw the same thing again.

The screens redraw from live data several times a second, and most of the time nothing on
a given line has changed. ``Static.update`` always schedules a repaint (and by default a
layout pass), which is what made an idle control center cost CPU; comparing the text *and*
its styles first keeps an idle screen idle.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def _signature(content: Content | str) -> tuple[str, tuple[object, ...]]:
    if isinstance(content, str):
        return (content, ())
    return (content.plain, tuple(content.spans))


class LiveStatic(Static):
    """``show()`` redraws only when the content (text or style) differs."""

    def __init__(
        self,
        content: Content | str = "",
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(content, id=id, classes=classes)
        self._signature: tuple[str, tuple[object, ...]] | None = None

    def show(self, content: Content | str, *, layout: bool | None = None) -> bool:
        """Draw ``content`` if it changed; returns True when it did.

        A layout pass (the costly part of an update) only happens when the number of lines
        changed, unless ``layout`` says otherwise: same lines, same box.
        """
        signature = _signature(content)
        if signature == self._signature:
            return False
        lines = signature[0].count("\n")
        if layout is None:
            layout = self._signature is None or lines != self._signature[0].count("\n")
        self._signature = signature
        self.update(content, layout=layout)
        return True
