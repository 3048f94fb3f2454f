"""Events per second from samples of a running total, over a sliding window.

The runtime (orders/s), the supervisor (events/s per service), the live model (records/s into
each topic) and the topics screen (records/s of a tail) all turn "a total that grows" into "how
fast it grows lately". One meter keeps that arithmetic, and its edge cases (a single sample, a
clock that did not move, a total that went backwards after a reset), in one place. It imports
nothing from the rest of the package so that any layer may use it.
"""

from __future__ import annotations

from collections import deque


class RateMeter:
    """The growth per second of a running total over the last ``window_s`` seconds.

    Samples older than the window are dropped, but the two newest are always kept, so a caller
    that samples less often than the window still gets the rate over its last interval rather
    than nothing.
    """

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, total: int) -> None:
        """Record that the total was ``total`` at time ``at`` (seconds, any monotonic clock).

        A sample not newer than the last one is ignored: it adds no information about speed,
        and a repeated snapshot must not shorten the window.
        """
        samples = self._samples
        if samples and at <= samples[-1][0]:
            return
        samples.append((at, total))
        while len(samples) > 2 and at - samples[0][0] > self.window_s:
            samples.popleft()

    def rate(self) -> float | None:
        """Growth per second across the window; None until two samples are in."""
        if len(self._samples) < 2:
            return None
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return max(0, v1 - v0) / (t1 - t0)

    def clear(self) -> None:
        """Forget every sample (the total being measured starts over)."""
        self._samples.clear()
