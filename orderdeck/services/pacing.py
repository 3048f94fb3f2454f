"""How long a service worker lets its next batch gather: a linger that follows the load.

Much of a batch's cost does not depend on its size: a fetch, a transaction's COMMIT, a
produce request, and the broker's handling of each. At a low rate every batch holds one
record, so an order costs many times the CPU it costs flat out (issue 18). Waiting a little
before the next batch lets records share it — Kafka's producers call this ``linger.ms`` — but
a wait only pays when records keep arriving, and it is latency added to the order:

* a trickle (the wait would not gather :data:`MIN_GATHERED` records, on average) is never
  held back;
* under a steady load the wait is what gathers about :data:`TARGET_RECORDS` records, and never
  more than :data:`MAX_LINGER_S`;
* a full batch means a backlog: the next one is taken at once, so saturation is unchanged;
* a batch holding an order accepted more than :data:`LATE_S` ago means the pipeline is
  running late (behind a backlog, or short of CPU): the next batch is taken at once. An
  order's age is read from its id: the API makes order ids time-ordered (a version 7 UUID
  whose first 48 bits are the milliseconds of its acceptance), and every event carries the
  order id in its correlation header.

**Only the first hop lingers** (``Service.paced``: the order service). Its inbox is fed one
record per API request; every later inbox receives the batches the service before it
produced, one produce request per batch, so a fetch there already returns a whole batch.
When the payment service lingered too, its cycle was as long as the order service's, so each
of its batches still caught one upstream batch: 894 batches against the order service's 885
in the same 28 s at 100 orders/s. Its linger gathered nothing and added 30 ms to every order.
Spent on the first hop alone, the same latency makes every hop's batches larger
(BENCHMARKS.md, issue 18, session 13).

The arrival rate is what the batches of the last :data:`RATE_WINDOW_S` held, so it needs
nothing but the sizes and the clock; a window rather than the gap between two batches, so one
early or late arrival does not swing it.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from orderdeck.events import HEADER_CORRELATION_ID

#: The most the order service waits for its next batch to gather: an order's whole pacing
#: (60 ms on the first hop against 30 ms on each of the first two: BENCHMARKS.md, issue 18).
MAX_LINGER_S = 0.06
#: Under load, wait for about this many records (shorter at higher rates).
TARGET_RECORDS = 16
#: Wait only when the longest wait would gather at least this many records on average: with
#: the 60 ms cap, under 25 orders/s is a trickle and never held.
MIN_GATHERED = 1.5
#: The arrival rate is the records of the batches taken in this many last seconds.
RATE_WINDOW_S = 0.25
#: No linger after a batch holding an order accepted longer ago than this. An on-time
#: batch's oldest order waited one linger at most: under MAX_LINGER_S and a few ms.
LATE_S = 0.1


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
