"""How long a service worker lets its next batch gather: a linger that follows the load.

Much of a batch's cost does not depend on its size: a fetch, a transaction's COMMIT, a
produce request, and the broker's handling of each. At a low rate every batch holds one
record, so an order costs many times the CPU it costs flat out (issue 18). Waiting a little
before the next batch lets records share it — Kafka's producers call this ``linger.ms`` — but
a wait only pays when records keep arriving, and it is latency added to every hop:

* a trickle (the wait would not gather another record, on average) is never held back;
* under a steady load the wait is what gathers about :data:`TARGET_RECORDS` records, and never
  more than :data:`MAX_LINGER_S` (the most a record waits per hop for pacing);
* a full batch means a backlog: the next one is taken at once, so saturation is unchanged.

The arrival rate is estimated from the batches themselves (records per second between one
batch and the next, smoothed), so the pacer needs nothing but the sizes and the clock.
"""

from __future__ import annotations

#: The most a worker waits for its next batch to gather.
MAX_LINGER_S = 0.02
#: Under load, wait for about this many records (shorter at higher rates).
TARGET_RECORDS = 16
#: Wait only when the longest wait would gather at least this many records on average.
MIN_GATHERED = 1.0
#: Weight of the newest batch in the smoothed arrival rate.
SMOOTHING = 0.3


class Pacer:
    """The linger after each batch of one worker, from the sizes and times of its batches."""

    def __init__(self, full: int) -> None:
        #: A batch of this many records is full: the fetcher holds more, take them at once.
        self.full = full
        #: Smoothed records per second arriving at this worker.
        self.rate = 0.0
        self._last: float | None = None

    def linger(self, size: int, now: float) -> float:
        """Seconds to let the next batch gather, given a batch of ``size`` taken at ``now``
        (``time.monotonic()``)."""
        if self._last is not None:
            latest = size / max(now - self._last, 1e-3)
            self.rate += SMOOTHING * (latest - self.rate)
        else:
            self.rate = 0.0
        self._last = now
        if size >= self.full or self.rate * MAX_LINGER_S < MIN_GATHERED:
            return 0.0
        return min(MAX_LINGER_S, TARGET_RECORDS / self.rate)
