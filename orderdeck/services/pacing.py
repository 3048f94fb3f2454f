"""How long a service worker lets its next batch gather: a linger that follows the load.

Much of a batch's cost does not depend on its size: a fetch, a transaction's COMMIT, a
produce request, and the broker's handling of each. At a low rate every batch holds one
record, so an order costs many times the CPU it costs flat out (issue 18). Waiting a little
before the next batch lets records share it — Kafka's producers call this ``linger.ms`` — but
a wait only pays when records keep arriving, and it is latency added to every hop:

* a trickle (the wait would not gather another record, on average) is never held back;
* under a steady load the wait is what gathers about :data:`TARGET_RECORDS` records, and never
  more than :data:`MAX_LINGER_S` (the most a record waits per hop for pacing);
* a full batch means a backlog: the next one is taken at once, so saturation is unchanged;
* when latency matters it is not added: once the orders of a batch were accepted more than
  :data:`LATENCY_BUDGET_S` ago (a later hop of the pipeline, or a pipeline running late), the
  next batch is taken at once. An order's age is read from its id: the API makes order ids
  time-ordered (a version 7 UUID whose first 48 bits are the milliseconds of its acceptance),
  and every event carries the order id in its correlation header. So the first hops of a
  young order linger and the last do not, which bounds what pacing adds to an order's whole
  way, not just to each hop.

The arrival rate is what the batches of the last :data:`RATE_WINDOW_S` held, so it needs
nothing but the sizes and the clock; a window rather than the gap between two batches, because
the events of one order often come in pairs a few milliseconds apart, which is no load.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from orderdeck.events import HEADER_CORRELATION_ID

#: The most a worker waits for its next batch to gather (30 ms against 20: 17 % less CPU at
#: 100 and 500 orders/s for 24 ms more final p99; BENCHMARKS.md, issue 18, session 12).
MAX_LINGER_S = 0.03
#: Under load, wait for about this many records (shorter at higher rates).
TARGET_RECORDS = 16
#: Wait only when the longest wait would gather at least this many records on average: with
#: the 30 ms cap, a worker seeing under 50 records/s (an order's two events a few ms apart at
#: 20 orders/s are 40) is a trickle and never held.
MIN_GATHERED = 1.5
#: The arrival rate is the records of the batches taken in this many last seconds.
RATE_WINDOW_S = 0.25
#: No linger after a batch whose oldest order was accepted longer ago than this.
LATENCY_BUDGET_S = 0.06


def oldest_order_age_s(records: Iterable[Any], now_ms: int) -> float:
    """Seconds since the oldest order of ``records`` (Kafka records) was accepted, from the
    time-ordered order ids in their correlation headers; 0.0 when none carries one (ids
    made from an Idempotency-Key, or by other producers, tell no time)."""
    oldest = now_ms
    for record in records:
        for key, value in record.headers or ():
            if key == HEADER_CORRELATION_ID:
                if len(value) == 36 and value[14:15] == b"7":
                    oldest = min(oldest, int(value[:8] + value[9:13], 16))
                break
    return max(0, now_ms - oldest) / 1000


class Pacer:
    """The linger after each batch of one worker, from the sizes and times of its batches."""

    def __init__(self, full: int) -> None:
        #: A batch of this many records is full: the fetcher holds more, take them at once.
        self.full = full
        #: Records per second arriving at this worker (over the last RATE_WINDOW_S).
        self.rate = 0.0
        #: (monotonic time, size) of the batches taken in the last RATE_WINDOW_S.
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._in_window = 0

    def linger(self, size: int, now: float) -> float:
        """Seconds to let the next batch gather, given a batch of ``size`` taken at ``now``
        (``time.monotonic()``)."""
        self._recent.append((now, size))
        self._in_window += size
        while self._recent[0][0] <= now - RATE_WINDOW_S:
            self._in_window -= self._recent.popleft()[1]
        self.rate = self._in_window / RATE_WINDOW_S
        if size >= self.full or self.rate * MAX_LINGER_S < MIN_GATHERED:
            return 0.0
        return min(MAX_LINGER_S, TARGET_RECORDS / self.rate)
