"""A logging handler that keeps recent records for the in-app log panel.

uvicorn, aiokafka and the services log from the event loop and from threads (the local Kafka
start runs in one). Writing to the terminal would tear the Textual screen, so the handler
only appends formatted lines to a bounded, lock-protected ring; the log panels pull new lines
on the app's refresh tick. Pulling (instead of posting a message per record) coalesces a burst
of log lines into one screen update and works the same from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LogLine:
    """One formatted log record with its position in the stream."""

    seq: int
    level: int
    text: str


class LogBuffer(logging.Handler):
    """Thread-safe ring of the last ``capacity`` formatted log records."""

    def __init__(self, capacity: int = 2000, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._guard = threading.Lock()
        self._seq = 0
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep ``record``; never raises (logging must not crash the app)."""
        try:
            text = self.format(record)
        except Exception:  # a bad format string in someone's log call
            self.handleError(record)
            return
        with self._guard:
            self._seq += 1
            self._lines.append(LogLine(self._seq, record.levelno, text))

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest line (0 when nothing was logged)."""
        with self._guard:
            return self._seq

    def since(self, seq: int) -> list[LogLine]:
        """Lines newer than ``seq``, oldest first (older ones may have left the ring)."""
        with self._guard:
            if self._seq <= seq:
                return []
            return [line for line in self._lines if line.seq > seq]
