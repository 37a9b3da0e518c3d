"""One log line per bad input, at a bounded rate: a token bucket in front of a log.

A flood of malformed messages (or of connections closed by a limit) must not become a flood
of log lines: :class:`RateLimitedLog` passes lines while its bucket has tokens (``burst`` at
first, refilled at ``rate`` per second) and counts the rest; the count is written as one
line ("... K more suppressed") before the next line that passes, or when the bucket has a
token again if the caller gave a ``call_later`` (a loop's), or at :meth:`RateLimitedLog.flush`.

Only the log is limited: listeners (the control API's metrics and event stream) still see
every event.  Used by the live deployment for pool cores' ``BadMessage`` lines and the
drivers' notices (emulator/live/deployment.py, emulator/live/driver.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["BURST", "RATE", "RateLimitedLog"]

BURST = 20
"""Lines passed at once before limiting starts.  CHOICE: a screenful."""

RATE = 2.0
"""Lines per second passed while limiting.  CHOICE: readable as it scrolls."""


class RateLimitedLog:
    """Calls ``sink(line)`` for each line while tokens last; counts the others.

    ``label`` names what is counted in the summary line ("bad-input lines").  ``clock`` is
    the seconds clock (a loop's ``time``; default :func:`time.monotonic`); ``call_later``
    (``loop.call_later``) lets the summary be written as soon as a token is back instead of
    waiting for the next line.
    """

    __slots__ = (
        "_burst",
        "_call_later",
        "_clock",
        "_label",
        "_pending",
        "_rate",
        "_sink",
        "_stamp",
        "_tokens",
        "suppressed",
        "total_suppressed",
    )

    def __init__(
        self,
        sink: Callable[[str], None],
        *,
        label: str = "lines",
        rate: float = RATE,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
        call_later: Callable[[float, Callable[[], None]], object] | None = None,
    ) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError("a rate-limited log needs rate > 0 and burst >= 1")
        self._sink = sink
        self._label = label
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._call_later = call_later
        self._tokens = float(burst)
        self._stamp = clock()
        self._pending = False  # a summary is scheduled
        self.suppressed = 0
        """Lines suppressed since the last summary."""
        self.total_suppressed = 0
        """Lines suppressed since the start."""

    def __call__(self, line: str) -> None:
        if self._take():
            self._summary()
            self._sink(line)
            return
        self.suppressed += 1
        self.total_suppressed += 1
        if self._call_later is not None and not self._pending:
            self._pending = True
            self._call_later((1.0 - self._tokens) / self._rate, self._due)

    def flush(self) -> None:
        """Write the summary of what was suppressed, if anything was (at stop)."""
        self._summary()

    def _take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _due(self) -> None:
        self._pending = False
        if not self.suppressed:
            return
        if self._take():
            self._summary()
        elif self._call_later is not None:  # the clock was a hair early: once more
            self._pending = True
            self._call_later((1.0 - self._tokens) / self._rate, self._due)

    def _summary(self) -> None:
        if self.suppressed:
            count, self.suppressed = self.suppressed, 0
            self._sink(f"... {count} more {self._label} suppressed (at most {self._rate:g}/s)")
