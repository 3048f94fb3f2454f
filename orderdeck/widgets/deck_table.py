"""A DataTable that also moves with the keys of less, vim and k9s: ``j``/``k``/``g``/``G``.

Every table of the control center is one of these, so the same keys work on every screen
(the record tail, ``RecordView``, binds the same four).
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, OptionList


class DeckTable(DataTable[object]):
    """A row-cursor DataTable with ``j``/``k``/``g``/``G``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
    ]


class PanelScroll(VerticalScroll):
    """A focusable scroll of panels (a stacked narrow layout) with ``j``/``k``/``g``/``G``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]


class DeckList(OptionList):
    """An OptionList (the topic list) with the same ``j``/``k``/``g``/``G``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
    ]
